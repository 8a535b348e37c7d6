import { execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { LONG_ARGV } from '../src-main/cli/argv.ts';
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

/** The CLI with `input` on its stdin; the exit signal too, since a segfault is what this guards against. */
function sagasuWithStdin(
  args: string[],
  input: string,
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: projectRoot });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => {
      stdout += b;
    });
    child.stderr.on('data', (b) => {
      stderr += b;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** Small distinct JPEGs, named long as photos in real folders are. */
async function makePhotos(dir: string, count: number): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  for (let k = 0; k < count; k++) {
    const file = join(dir, `holiday-${String(k).padStart(4, '0')}-a-rather-long-camera-file-name.jpg`);
    await sharp({
      create: { width: 64, height: 48, channels: 3, background: { r: 40 * k, g: 255 - 30 * k, b: 90 } },
    })
      .jpeg()
      .toFile(file);
    files.push(file);
  }
  return files;
}

describe.skipIf(!cnnBuilt)(`sagasu features on many photos${skipNote({ cnn: true })}`, () => {
  it('1,000 paths on the command line (far past what crashes onnxruntime) are all reported', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sagasu-many-'));
    const real = await makePhotos(join(dir, 'photos'), 5);
    // Every 200th path a real photo, the others missing: the length is the point, not the CNN's work.
    const paths = Array.from({ length: 1000 }, (_, k) =>
      k % 200 === 0
        ? (real[k / 200] as string)
        : join(dir, 'photos', `missing-${String(k).padStart(4, '0')}-a-rather-long-camera-file-name.jpg`),
    );
    const bytes = paths.reduce((n, p) => n + Buffer.byteLength(p) + 1, 0);
    expect(bytes).toBeGreaterThan(Math.max(2 * LONG_ARGV, 40_000));
    const run = await sagasuWithStdin(['features', '--json', ...paths], '');
    expect(run.signal).toBeNull();
    expect(run.code, run.stderr.slice(-2000)).toBe(1); // the missing ones
    const reports = JSON.parse(run.stdout) as FeaturesReport[];
    expect(reports.map((r) => r.file)).toEqual(paths);
    expect(reports.filter((r) => r.fneDim === 17056).map((r) => r.file)).toEqual(real);
    expect(reports.filter((r) => r.error?.code === 'not-found')).toHaveLength(995);
  });

  it('takes folders and --files-from (a file or stdin, lines or NUL-separated)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sagasu-lists-'));
    const [a, b, c] = await makePhotos(join(dir, 'one'), 3);
    const [d] = await makePhotos(join(dir, 'two', 'deeper'), 1);
    const list = join(dir, 'list.txt');
    await writeFile(list, `${c}\n\n${a}\n`);
    const fromFile = await sagasuWithStdin(
      ['features', '--json', join(dir, 'two'), '--files-from', list],
      '',
    );
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect((JSON.parse(fromFile.stdout) as FeaturesReport[]).map((r) => r.file)).toEqual([d, c, a]);
    const fromStdin = await sagasuWithStdin(['features', '--json', '--files-from', '-'], `${b}\0${d}\0`);
    expect(fromStdin.code, fromStdin.stderr).toBe(0);
    expect((JSON.parse(fromStdin.stdout) as FeaturesReport[]).map((r) => r.file)).toEqual([b, d]);
    const folder = await sagasuWithStdin(['features', '--json', join(dir, 'one')], '');
    expect((JSON.parse(folder.stdout) as FeaturesReport[]).map((r) => r.file)).toEqual([a, b, c]);
    const none = await sagasuWithStdin(['features', '--files-from', join(dir, 'none.txt')], '');
    expect(none.code).toBe(1);
    expect(none.stderr.trim()).toBe(`sagasu: ${join(dir, 'none.txt')}: cannot read the file list: ENOENT`);
  });
});

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
