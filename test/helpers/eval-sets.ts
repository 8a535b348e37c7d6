import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';

/** A photo-like JPEG: a colour gradient with a few shapes, so the CNN sees edges and texture. */
export async function makePhoto(seed: number): Promise<Buffer> {
  const w = 160;
  const h = 120;
  const pixels = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const k = (y * w + x) * 3;
      const ring = ((x - 80) ** 2 + (y - 60) ** 2) % (40 + seed * 7) < 20 ? 80 : 0;
      pixels[k] = (x * (3 + seed) + ring) & 255;
      pixels[k + 1] = (y * (2 + seed) + 40 * seed) & 255;
      pixels[k + 2] = ((x + y) * seed + ring) & 255;
    }
  return sharp(pixels, { raw: { width: w, height: h, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
}

export const TIE_CAPTION = 'a red square on a white wall';

/**
 * The ties set, in every format. a, b, c and f are the SAME photo (same bytes), so every caption scores
 * every photo alike and all ranks follow from the counts alone:
 * - a has the caption twice (a caption that repeats), b once (an image with one caption), c once plus a
 *   caption with no words, f only a caption with no words (so f has no usable caption);
 * - d is not a photo (fails to decode), e is listed but absent.
 * Ranked: a, b, c with 4 captions, all identical text.
 * - t2i: each caption ties with all 3 photos, ties count against it: rank 3 for all 4.
 * - i2t: 1 + the captions of OTHER photos scoring as high (all do): a 1 + 2 = 3, b 1 + 3 = 4, c 4.
 */
export const TIES_EXPECTED = {
  images: 3,
  captions: 4,
  i2t: { r1: 0, r5: 100, r10: 100, medr: 4, meanr: 11 / 3 },
  t2i: { r1: 0, r5: 100, r10: 100, medr: 3, meanr: 3 },
  rsum: 400,
};

const rows: Array<[string, string]> = [
  ['a.jpg', TIE_CAPTION],
  ['a.jpg', TIE_CAPTION],
  ['b.jpg', TIE_CAPTION],
  ['c.jpg', TIE_CAPTION],
  ['c.jpg', ' ... '],
  ['d.jpg', 'a photo that is not one'],
  ['e.jpg', 'a photo that is not there'],
  ['f.jpg', '!!!'],
];

export interface TieSets {
  csv: string;
  tsv: string;
  coco: string;
  cocoImages: string;
  flickr8k: string;
}

/** Writes the ties set under `dir` as a CSV, a TSV, a COCO JSON and a Flickr8k-style folder. */
export async function writeTieSets(dir: string): Promise<TieSets> {
  const photo = await makePhoto(3);
  const images = join(dir, 'images');
  await mkdir(images, { recursive: true });
  for (const name of ['a.jpg', 'b.jpg', 'c.jpg', 'f.jpg']) await writeFile(join(images, name), photo);
  await writeFile(join(images, 'd.jpg'), 'this is not a JPEG, whatever its name says');

  const csv = join(dir, 'captions.csv');
  await writeFile(
    csv,
    `image,caption,note\n${rows.map(([image, caption]) => `images/${image},"${caption}",x`).join('\n')}\n`,
  );
  const tsv = join(dir, 'captions.tsv');
  await writeFile(
    tsv,
    `caption\timage\n${rows.map(([image, caption]) => `${caption}\timages/${image}`).join('\n')}\n`,
  );

  const names = [...new Set(rows.map(([image]) => image))];
  const coco = join(dir, 'captions_ties.json');
  await writeFile(
    coco,
    JSON.stringify(
      {
        images: names.map((file_name, k) => ({ id: 100 + k, file_name })),
        annotations: rows.map(([image, caption], k) => ({
          id: k,
          image_id: 100 + names.indexOf(image),
          caption,
        })),
      },
      null,
      1,
    ),
  );

  const flickr8k = join(dir, 'flickr');
  await mkdir(flickr8k, { recursive: true });
  const seen = new Map<string, number>();
  const tokenLines = rows.map(([image, caption]) => {
    const n = seen.get(image) ?? 0;
    seen.set(image, n + 1);
    return `${image}#${n}\t${caption}`;
  });
  await writeFile(join(flickr8k, 'Flickr8k.token.txt'), `${tokenLines.join('\n')}\n`);
  await writeFile(join(flickr8k, 'Flickr_8k.testImages.txt'), `${names.join('\n')}\n`);
  await writeFile(join(flickr8k, 'Flickr_8k.devImages.txt'), '');
  await writeFile(join(flickr8k, 'Flickr_8k.trainImages.txt'), '');
  await mkdir(join(flickr8k, 'images'), { recursive: true });
  for (const name of names.filter((n) => n !== 'e.jpg'))
    await writeFile(
      join(flickr8k, 'images', name),
      name === 'd.jpg' ? 'this is not a JPEG, whatever its name says' : photo,
    );
  return { csv, tsv, coco, cocoImages: images, flickr8k };
}
