import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import sharp from 'sharp';
import { photoMime, photoType } from '../../contract/index.ts';
import { ImageError, SagasuError } from '../errors.ts';
import { readPhotoFile } from '../image/index.ts';
import type { ImageRecord, Library } from '../library/index.ts';
import { indexedImage } from './catalogue.ts';

const THUMB_SIZES = [128, 256, 512, 1024] as const;

/**
 * A photo media may show: one that decoded when it was indexed and is still a photo file inside its library
 * folder. A file that never decoded (a link to a text file named .jpg) is not served.
 */
function servable(library: Library, imageId: number): { image: ImageRecord; path: string } {
  const image = indexedImage(library, imageId);
  if (image.status === 'failed' || image.width === null)
    throw new SagasuError(
      'not-found',
      image.path,
      `has no photo to show: it could not be read as one when indexed${image.error ? ` (${image.error})` : ''}`,
    );
  const path = resolve(image.path);
  const root = library.roots.list().find((r) => r.id === image.rootId);
  const rel = root ? relative(root.path, path) : '..';
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel) || photoType(path) === null)
    throw new SagasuError('forbidden', path, 'is not a photo file inside a library folder');
  return { image, path };
}

/**
 * The bytes, if they are still an image: a link swapped in for a photo after indexing is refused by its
 * content, and a FIFO or device by readPhotoFile's non-blocking open, so it never blocks a thread.
 */
async function photoBytes(path: string): Promise<{ bytes: Buffer; type: string }> {
  const bytes = Buffer.from(await readPhotoFile(path));
  const format = await sharp(bytes)
    .metadata()
    .then((m) => m.format as string)
    .catch(() => '');
  // By the format sharp reads from the bytes, which it names like a photo extension (AVIF and HEIC are both
  // heif to it); svg, pdf and the like are no photo.
  const served = photoMime(`photo.${format}`);
  if (!served)
    throw new ImageError(
      'unsupported-format',
      path,
      'is no longer a photo (it changed since it was indexed); index the folder again',
    );
  return { bytes, type: format === 'heif' ? (photoMime(path) ?? served) : served };
}

/** A JPEG thumbnail (longest side `size` px, cached in the library) or the original file of an indexed photo. */
export async function media(
  library: Library,
  imageId: number,
  kind: 'thumb' | 'full',
  size = 256,
): Promise<{ bytes: Buffer; type: string }> {
  const { image, path } = servable(library, imageId);
  if (kind === 'full') return photoBytes(path);
  const side = THUMB_SIZES.find((s) => s >= size) ?? THUMB_SIZES[THUMB_SIZES.length - 1];
  const { mtimeMs } = await stat(path);
  const dir = join(library.dir, 'thumbs');
  const file = join(dir, `${imageId}-${side}-${Math.round(mtimeMs)}.jpg`);
  try {
    return { bytes: await readFile(file), type: 'image/jpeg' };
  } catch {
    // not made yet
  }
  const { bytes: photo } = await photoBytes(path);
  let bytes: Buffer;
  try {
    bytes = await sharp(photo, { failOn: 'none' })
      .rotate()
      .resize(side, side, { fit: 'inside', withoutEnlargement: true })
      .jpeg({ quality: 80 })
      .toBuffer();
  } catch (error) {
    throw new SagasuError('corrupt', image.path, 'cannot be decoded for a thumbnail', { cause: error });
  }
  await mkdir(dir, { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, bytes);
  await rename(temp, file);
  return { bytes, type: 'image/jpeg' };
}
