import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../src-main/engine/paths.ts';
import { TIES_EXPECTED, type TieSets, writeTieSets } from './helpers/eval-sets.ts';
import { cnnBuilt, skipNote } from './helpers/shared.ts';

const bin = join(projectRoot, 'bin', 'sagasu.js');

let cacheDir: string;

async function sagasu(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, [bin, ...args], {
    cwd: projectRoot,
    maxBuffer: 32 << 20,
    // The test's own cache, so the features it computes never mix with the checkout's.
    env: { ...process.env, SAGASU_CACHE_DIR: cacheDir },
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
}

describe.skipIf(!cnnBuilt)(`sagasu eval${skipNote({ cnn: true })}`, () => {
  let dir: string;
  let sets: TieSets;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sagasu-eval-cli-'));
    cacheDir = join(dir, 'cache');
    sets = await writeTieSets(dir);
  });

  it('--json prints one object with both embeddings, their difference and what was left out', async () => {
    const { code, stdout } = await sagasu(['eval', '--dataset', sets.csv, '--json']);
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    expect(out).toMatchObject({
      dataset: sets.csv,
      images: TIES_EXPECTED.images,
      captions: TIES_EXPECTED.captions,
      results: {
        fne: { t2i: TIES_EXPECTED.t2i, rsum: TIES_EXPECTED.rsum },
        'one-layer': { t2i: TIES_EXPECTED.t2i, rsum: TIES_EXPECTED.rsum },
        search: { t2i: TIES_EXPECTED.t2i, rsum: TIES_EXPECTED.rsum },
      },
      difference: { rsum: 0 },
    });
    for (const key of ['fne', 'one-layer', 'search'])
      expect(Object.keys(out.results[key].i2t).sort()).toEqual(['meanr', 'medr', 'r1', 'r10', 'r5']);
    expect(out.skipped.images.map((s: { file: string }) => s.file.split('/').at(-1))).toEqual([
      'd.jpg',
      'e.jpg',
    ]);
    expect(out.skipped.captions).toHaveLength(2);
    expect(out.features.cacheDir.startsWith(join(cacheDir, 'eval-vectors'))).toBe(true);
  });

  it('prints an aligned table with the difference row, and writes the report', async () => {
    const report = join(dir, 'report');
    const { code, stdout, stderr } = await sagasu(['eval', '--dataset', sets.csv, '--report', report]);
    expect(code).toBe(0);
    const lines = stdout.split('\n');
    const header = lines.findIndex((l) => l.startsWith('embedding'));
    expect(lines[header + 2]).toMatch(
      /^fne\s+0\.0\s+100\.0\s+100\.0\s+4\s+3\.7\s+0\.0\s+100\.0\s+100\.0\s+3\s+3\.0\s+400\.0$/,
    );
    expect(lines[header + 3]).toMatch(/^one-layer\s/);
    expect(lines[header + 4]).toMatch(/^fne − one-layer\s+±0\.0/);
    // The app's fused ranking last: on photos of one content it ties exactly as fne does.
    expect(lines[header + 5]).toMatch(
      /^search\s+0\.0\s+100\.0\s+100\.0\s+4\s+3\.7\s+0\.0\s+100\.0\s+100\.0\s+3\s+3\.0\s+400\.0$/,
    );
    // Every row as wide as the header: the columns line up.
    for (const k of [1, 2, 3, 4, 5]) expect(lines[header + k]?.length).toBe(lines[header]?.length);
    expect(stdout).toMatch(/left out: photo .*d\.jpg: (unsupported-format|corrupt): /);
    expect(stdout).toContain(`left out: caption "!!!" (${sets.csv}:9): no words to encode`);
    expect(stderr).toContain(join(report, 'index.html'));
  });

  it('a report folder that cannot be made: the figures come first, then one line naming it, exit 1', async () => {
    // /etc/passwd/x: a file in the way (ENOTDIR). /proc/x: Node's recursive mkdir loops forever there.
    const targets = ['/etc/passwd/x', ...(existsSync('/proc/self') ? ['/proc/x'] : [])];
    const runs = await Promise.all(
      targets.map((report) => sagasu(['eval', '--dataset', sets.csv, '--report', report])),
    );
    for (const [k, { code, stdout, stderr }] of runs.entries()) {
      expect(code).toBe(1);
      expect(stdout).toMatch(/^fne\s+0\.0\s+100\.0/m);
      const last = stderr.trim().split('\n').at(-1);
      expect(last).toMatch(new RegExp(`^sagasu: ${targets[k]}: cannot be (written|made): `));
      expect(stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('names the file and line of a malformed data set and exits 1', async () => {
    const bad = join(dir, 'bad.csv');
    await writeFile(bad, 'image,caption\na.jpg,one\nb.jpg,two,three\n');
    const { code, stderr } = await sagasu(['eval', '--dataset', bad]);
    expect(code).toBe(1);
    expect(stderr).toContain(`sagasu: ${bad}:3:`);
  });

  it('refuses an unknown --embedding and a COCO file without --images', async () => {
    const a = await sagasu(['eval', '--dataset', sets.csv, '--embedding', 'both-ways']);
    expect(a.code).not.toBe(0);
    expect(a.stderr).toContain('both-ways');
    const b = await sagasu(['eval', '--dataset', sets.coco]);
    expect(b.code).toBe(1);
    expect(b.stderr).toContain('--images');
  });
});
