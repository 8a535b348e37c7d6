import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { shared } from './shared.ts';

/** Flickr8k photos (real JPEGs) from ../shared, in a stable order. */
export function flickrPhotos(n: number): string[] {
  if (!shared) throw new Error('../shared is absent');
  const dir = join(shared, 'data', 'flickr8k', 'images');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.jpg'))
    .sort()
    .slice(0, n)
    .map((f) => join(dir, f));
}

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `sagasu-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** What a photo folder built by makePhotoFolder holds, by role. */
export interface PhotoFolder {
  root: string;
  /** Photo files that should be indexed (decodable). */
  good: string[];
  /** Files with a photo extension that cannot be decoded, and why (a substring of the recorded reason). */
  bad: Array<{ path: string; reason: string }>;
  /** Photo files that must never be catalogued (hidden or system folders). */
  skipped: string[];
  /** A photo whose EXIF says Canon EOS 5D, taken 2018-04-03 10:11:12. */
  withExif: string;
  /** A PNG saved under a .jpg name. */
  mislabelled: string;
  japanese: string;
}

/**
 * A small library folder with the situations the walker and indexer must handle: nested folders, spaces and
 * Japanese names, a hidden folder, a NAS metadata folder, a symlink loop, EXIF, a mislabelled PNG, and corrupt,
 * truncated, empty and not-an-image files.
 */
export async function makePhotoFolder(parent: string, photos = 8): Promise<PhotoFolder> {
  const root = join(parent, 'Photos 写真');
  const src = flickrPhotos(photos + 2);
  mkdirSync(join(root, 'trip 2019', '京都'), { recursive: true });
  mkdirSync(join(root, '.thumbnails'), { recursive: true });
  mkdirSync(join(root, '@eaDir'), { recursive: true });
  const good: string[] = [];
  for (const [i, file] of src.slice(0, photos).entries()) {
    const folder =
      i % 3 === 0 ? root : i % 3 === 1 ? join(root, 'trip 2019') : join(root, 'trip 2019', '京都');
    const name = i === 2 ? '犬と公園.jpg' : i === 4 ? 'beach day 4.JPG' : `IMG_${1000 + i}.jpg`;
    const target = join(folder, name);
    copyFileSync(file, target);
    good.push(target);
  }
  const japanese = good[2] as string;
  const withExif = join(root, 'camera shot.jpg');
  await sharp(src[photos] as string)
    .withExif({
      IFD0: { Make: 'Canon', Model: 'Canon EOS 5D' },
      IFD2: { DateTimeOriginal: '2018:04:03 10:11:12' },
    } as unknown as Parameters<ReturnType<typeof sharp>['withExif']>[0])
    .jpeg()
    .toFile(withExif);
  good.push(withExif);
  const mislabelled = join(root, 'trip 2019', 'really a png.jpg');
  await sharp(src[photos + 1] as string)
    .png()
    .toFile(mislabelled);
  good.push(mislabelled);

  const jpeg = await sharp(src[0] as string).toBuffer();
  const bad = [
    { path: join(root, 'notes.jpg'), reason: 'unsupported-format' },
    { path: join(root, 'truncated.jpg'), reason: 'corrupt' },
    { path: join(root, 'empty.png'), reason: 'empty-file' },
  ];
  writeFileSync(bad[0]?.path as string, 'this is a text file, not a photo\n');
  writeFileSync(bad[1]?.path as string, jpeg.subarray(0, Math.floor(jpeg.length / 2)));
  writeFileSync(bad[2]?.path as string, '');

  const skipped = [join(root, '.thumbnails', 'thumb.jpg'), join(root, '@eaDir', 'SYNOPHOTO_THUMB.jpg')];
  for (const s of skipped) copyFileSync(src[0] as string, s);
  // Not photos by extension: never catalogued at all.
  writeFileSync(join(root, 'readme.txt'), 'hello');
  // A loop back to the root, and a second link to an already listed folder.
  symlinkSync(root, join(root, 'trip 2019', 'loop'));
  symlinkSync(join(root, 'trip 2019'), join(root, 'trip again'));
  return { root, good, bad, skipped, withExif, mislabelled, japanese };
}
