/**
 * npm run data:augment on a small Flickr8k-shaped folder made here: the training photo is transformed, the
 * others are copied byte for byte, the caption files are linked; bad arguments are refused by name and
 * nothing outside the tool's own output is ever removed.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../src-main/engine/paths.ts';

function augment(args: string[], flickr8k: string) {
  return promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', join(projectRoot, 'scripts', 'augment-flickr8k.ts'), ...args],
    { cwd: projectRoot, env: { ...process.env, SAGASU_FLICKR8K: flickr8k } },
  ).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
}

/** Left half red, right half blue: a mirror image swaps them. */
const halves = () =>
  sharp({ create: { width: 224, height: 224, channels: 3, background: '#ff0000' } })
    .composite([
      {
        input: { create: { width: 112, height: 224, channels: 3, background: '#0000ff' } },
        left: 112,
        top: 0,
      },
    ])
    .jpeg({ quality: 90 })
    .toBuffer();

async function pixel(file: string, x: number): Promise<number[]> {
  const { data } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  const at = (112 * 224 + x) * 3;
  return [data[at] as number, data[at + 1] as number, data[at + 2] as number];
}

let work: string;
let flickr8k: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'sagasu-augment-'));
  flickr8k = join(work, 'flickr8k');
  await mkdir(join(flickr8k, 'images'), { recursive: true });
  await writeFile(join(flickr8k, 'images', 'a.jpg'), await halves());
  await writeFile(join(flickr8k, 'images', 'b.jpg'), await halves());
  await writeFile(join(flickr8k, 'Flickr_8k.trainImages.txt'), 'a.jpg\n');
  await writeFile(join(flickr8k, 'Flickr_8k.devImages.txt'), 'b.jpg\n');
  await writeFile(join(flickr8k, 'Flickr_8k.testImages.txt'), '');
  await writeFile(join(flickr8k, 'Flickr8k.token.txt'), 'a.jpg#0\ta red and blue square\n');
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('npm run data:augment', () => {
  it('flip: mirrors the training photo, copies the others, links the caption files', async () => {
    const out = join(work, 'flip');
    const run = await augment(['--view', 'flip', '--out', out], flickr8k);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const [r, , b] = await pixel(join(out, 'images', 'a.jpg'), 10);
    expect(b).toBeGreaterThan(200);
    expect(r).toBeLessThan(50);
    expect(await readFile(join(out, 'images', 'b.jpg'))).toEqual(
      await readFile(join(flickr8k, 'images', 'b.jpg')),
    );
    expect(await readlink(join(out, 'Flickr8k.token.txt'))).toBe(join(flickr8k, 'Flickr8k.token.txt'));
  });

  it('crop: the same bytes on a rerun (seeded per photo), and the rerun may replace its own output', async () => {
    const out = join(work, 'crop');
    expect((await augment(['--view', 'crop', '--out', out], flickr8k)).code).toBe(0);
    const first = await readFile(join(out, 'images', 'a.jpg'));
    expect((await augment(['--view', 'crop', '--out', out], flickr8k)).code).toBe(0);
    expect(await readFile(join(out, 'images', 'a.jpg'))).toEqual(first);
    const { width, height } = await sharp(first).metadata();
    expect([width, height]).toEqual([224, 224]);
  });

  it('refuses a non-empty folder it did not write, and leaves it as it was', async () => {
    const out = join(work, 'precious');
    await mkdir(out);
    await writeFile(join(out, 'keep.txt'), 'mine');
    const run = await augment(['--view', 'flip', '--out', out], flickr8k);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(`--out: ${out} is not empty and was not written by data:augment`);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(await readdir(out)).toEqual(['keep.txt']);
  });

  it('refuses an unknown view and a missing Flickr8k folder by name', async () => {
    const view = await augment(['--view', 'blur', '--out', join(work, 'x')], flickr8k);
    expect(view.stderr).toContain("argument 'blur' is invalid. expected flip or crop");
    const missing = await augment(['--view', 'flip', '--out', join(work, 'y')], join(work, 'absent'));
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain(`${join(work, 'absent', 'images')}: cannot list the Flickr8k images`);
    expect(missing.stderr).not.toMatch(/\n\s+at /);
  });
});
