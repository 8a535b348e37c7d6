/**
 * npm run data:augment -- --view flip|crop --out <dir> — a copy of the Flickr8k folder whose TRAINING photos
 * are transformed (the others are copies of the originals, so their features come from the cache), for issue
 * 17's augmentation lever: `SAGASU_FLICKR8K=<dir> npm run data:prepare -- --out <prepared>` gives their
 * features, and `python -m training.train --augment <prepared>` draws each training photo's features from
 * the original or a view. Seeded per photo, so a rerun writes the same files.
 *   flip: mirrored left-right.
 *   crop: a random crop (64-100 % of the area, aspect 3:4 to 4:3) stretched back to 224 x 224, mirrored
 *         half the time, re-encoded at JPEG quality 50-90: the framing and compression a library's photos vary in.
 */
import { copyFile, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import sharp from 'sharp';
import { runCommand } from '../src-main/cli/run.ts';
import { listImages, requireFlickr8kDir } from '../src-main/engine/datasets/flickr8k.ts';
import { ArgumentError, ImageError } from '../src-main/engine/errors.ts';
import { mapPool } from '../src-main/engine/files.ts';
import { CNN_SIZE } from '../src-main/engine/image/index.ts';

const VIEWS = ['flip', 'crop'] as const;
type View = (typeof VIEWS)[number];

const options = new Command('data:augment')
  .requiredOption('--view <name>', `the transform (${VIEWS.join(' or ')})`, (v: string) => {
    if (!(VIEWS as readonly string[]).includes(v))
      throw new InvalidArgumentError(`expected ${VIEWS.join(' or ')}`);
    return v as View;
  })
  .requiredOption('--out <dir>', 'the folder to write (replaced)')
  .parse()
  .opts<{ view: View; out: string }>();

/** mulberry32: a small seeded generator, so each photo's transform depends only on its name and the view. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function seedOf(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

async function transform(file: string, view: View, name: string): Promise<Buffer> {
  if (view === 'flip') return sharp(file).flop().jpeg({ quality: 90 }).toBuffer();
  const random = generator(seedOf(`${view}:${name}`));
  const { width = CNN_SIZE, height = CNN_SIZE } = await sharp(file).metadata();
  const area = 0.64 + 0.36 * random();
  const aspect = Math.exp(Math.log(3 / 4) + (Math.log(4 / 3) - Math.log(3 / 4)) * random());
  const w = Math.min(width, Math.round(width * Math.sqrt(area * aspect)));
  const h = Math.min(height, Math.round(height * Math.sqrt(area / aspect)));
  const left = Math.floor(random() * (width - w + 1));
  const top = Math.floor(random() * (height - h + 1));
  let image = sharp(file)
    .extract({ left, top, width: w, height: h })
    .resize(width, height, { fit: 'fill', kernel: 'linear' });
  if (random() < 0.5) image = image.flop();
  return image.jpeg({ quality: 50 + Math.floor(41 * random()) }).toBuffer();
}

// Written into the output, so a rerun may replace it and nothing else is ever removed.
const MARKER = '.sagasu-augment';

await runCommand('data:augment', async () => {
  const source = requireFlickr8kDir();
  // First, so a missing or damaged folder is refused before anything is written.
  const images = await listImages(source);
  const out = resolve(options.out);
  const existing = await readdir(out).catch(() => [] as string[]);
  if (existing.length > 0 && !existing.includes(MARKER))
    throw new ArgumentError(
      '--out',
      `${out} is not empty and was not written by data:augment; give a new folder`,
    );
  await rm(out, { recursive: true, force: true });
  await mkdir(join(out, 'images'), { recursive: true });
  await writeFile(join(out, MARKER), `${options.view}\n`);
  // The captions and split files as they are; not manifest.tsv, whose checksums are the originals'.
  for (const entry of await readdir(source))
    if (entry.endsWith('.txt')) await symlink(join(source, entry), join(out, entry));
  let done = 0;
  await mapPool(images, 4, async (img) => {
    const target = join(out, 'images', img.image);
    if (img.split !== 'train') await copyFile(img.path, target);
    else {
      const bytes = await transform(img.path, options.view, img.image).catch((cause: unknown) => {
        throw new ImageError('corrupt', img.path, `cannot be transformed: ${(cause as Error).message}`, {
          cause,
        });
      });
      await writeFile(target, bytes);
    }
    if (++done % 1000 === 0) console.log(`data:augment: ${done}/${images.length}`);
  });
  console.log(`data:augment: ${options.view} of the training photos in ${out}`);
});
