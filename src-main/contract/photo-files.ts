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

/** The photo extensions the walker picks up, and the type each suggests. */
export const PHOTO_EXTENSIONS: ReadonlyMap<string, FileType> = new Map(
  Object.entries(PHOTO_FILES).map(([extension, [type]]) => [extension, type]),
);

/** `.jpg` for "a/b.JPG"; '' when the name has none. path.extname, without node:path. */
function extension(path: string): string {
  const name = path.slice(Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\')) + 1);
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot).toLowerCase() : '';
}

export function photoType(path: string): FileType | null {
  return PHOTO_EXTENSIONS.get(extension(path)) ?? null;
}

export function photoMime(path: string): string | null {
  const entry = (PHOTO_FILES as Record<string, readonly [FileType, string]>)[extension(path)];
  return entry?.[1] ?? null;
}
