/**
 * The photo files Sagasu reads: each extension, the file type it suggests before the content is read, and
 * its MIME type. The one home of these facts; it imports nothing, so the renderer takes it without zod.
 */
const PHOTO_FILES = {
  '.jpg': ['jpeg', 'image/jpeg'],
  '.jpeg': ['jpeg', 'image/jpeg'],
  '.jpe': ['jpeg', 'image/jpeg'],
  '.png': ['png', 'image/png'],
  '.webp': ['webp', 'image/webp'],
  '.tif': ['tiff', 'image/tiff'],
  '.tiff': ['tiff', 'image/tiff'],
  '.gif': ['gif', 'image/gif'],
  '.avif': ['avif', 'image/avif'],
  '.heic': ['heic', 'image/heic'],
  '.heif': ['heic', 'image/heif'],
} as const;

export const FILE_TYPES = ['jpeg', 'png', 'webp', 'tiff', 'gif', 'avif', 'heic'] as const;
export type FileType = (typeof FILE_TYPES)[number];

/** `.jpg` for "a/b.JPG"; '' when the name has none. path.extname, without node:path. */
function extension(path: string): string {
  const name = path.slice(Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\')) + 1);
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot).toLowerCase() : '';
}

const entry = (path: string) => (PHOTO_FILES as Record<string, readonly [FileType, string]>)[extension(path)];

/** The type a photo file's name suggests (the walker picks up only these); null for any other file. */
export function photoType(path: string): FileType | null {
  return entry(path)?.[0] ?? null;
}

export function photoMime(path: string): string | null {
  return entry(path)?.[1] ?? null;
}
