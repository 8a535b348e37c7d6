import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { FeaturesReport } from '../src-main/cli/features.ts';
import { projectRoot } from '../src-main/engine/paths.ts';
import { cnnBuilt, referenceDir, skipNote } from './helpers/shared.ts';

const bin = join(projectRoot, 'bin', 'sagasu.js');

async function sagasu(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, [bin, ...args], {
    cwd: projectRoot,
    maxBuffer: 32 << 20,
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
}

describe.skipIf(!referenceDir || !cnnBuilt)(`sagasu features${skipNote({ shared: true, cnn: true })}`, () => {
  const photosDir = join(referenceDir as string, 'photos');
  const expected = new Map(
    readFileSync(join(referenceDir as string, 'expected', 'expected.tsv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => line.split('\t'))
      .map(([photo, , , label]) => [photo as string, label as string]),
  );
  const photos = readdirSync(photosDir)
    .filter((f) => expected.has(f))
    .map((f) => join(photosDir, f));

  it('prints the interpreter top-1 label of every reference photo, the FNE size and its -1/0/+1 shares', async () => {
    const { code, stdout } = await sagasu(['features', ...photos, '--json']);
    expect(code).toBe(0);
    const reports = JSON.parse(stdout) as FeaturesReport[];
    expect(reports).toHaveLength(10);
    for (const r of reports) {
      const name = r.file.split('/').at(-1) as string;
      expect(r.top5?.[0]?.label, name).toBe(expected.get(name));
      expect(r.top5).toHaveLength(5);
      expect(r.fneDim).toBe(17056);
      const s = r.shares as NonNullable<FeaturesReport['shares']>;
      expect(s.negative + s.zero + s.positive).toBeCloseTo(1, 9);
    }
  });

  it('reports a bad file by name and reason, prints the others, and exits 1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sagasu-cli-'));
    const bad = join(dir, 'broken.jpg');
    await writeFile(bad, 'not a photo');
    const good = photos[0] as string;
    const { code, stdout, stderr } = await sagasu(['features', good, bad]);
    expect(code).toBe(1);
    expect(stdout).toContain(good);
    expect(stdout).toMatch(/FNE 17056-d: -1 [\d.]+% {2}0 [\d.]+% {2}\+1 [\d.]+%/);
    expect(stderr).toContain(`${bad}: error (unsupported-format)`);
  });

  it('a bad option value is refused naming the option', async () => {
    const mode = await sagasu(['features', photos[0] as string, '--mode', 'int4']);
    expect(mode.code).not.toBe(0);
    expect(mode.stderr).toContain('--mode: expected float or qdq, got "int4"');
    const batch = await sagasu(['features', photos[0] as string, '--batch', '0']);
    expect(batch.stderr).toContain('--batch: expected a positive integer, got "0"');
  });
});
