import { constants, promises as fs } from 'node:fs';
import { ImageError } from '../errors.ts';

/**
 * Reads a whole photo file, turning every way it can fail into an ImageError that names the file.
 * The file is opened non-blocking and checked with fstat on the open handle: a FIFO in a photo folder
 * would otherwise block the indexer forever, and checking the handle (not the path) leaves no window
 * between the check and the read.
 */
export async function readPhotoFile(file: string): Promise<Uint8Array> {
  let handle: fs.FileHandle | undefined;
  try {
    // O_NONBLOCK is absent on Windows, where FIFOs cannot sit in a folder anyway.
    handle = await fs.open(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
    const stat = await handle.stat();
    if (!stat.isFile()) {
      throw new ImageError(
        'not-a-file',
        file,
        stat.isDirectory()
          ? 'is a folder, not a photo file'
          : 'is not a regular file (a device, pipe or socket), so it cannot be a photo',
      );
    }
    const bytes = await handle.readFile();
    if (bytes.length === 0) {
      throw new ImageError(
        'empty-file',
        file,
        'the file is empty (0 bytes); it may be an unfinished download or copy',
      );
    }
    return bytes;
  } catch (error) {
    throw error instanceof ImageError ? error : readError(file, error);
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

function readError(file: string, error: unknown): ImageError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return new ImageError(
        'not-found',
        file,
        'no such file; it may have been moved or deleted after the folder was listed',
        { cause: error },
      );
    case 'EACCES':
    case 'EPERM':
      return new ImageError(
        'permission-denied',
        file,
        'permission denied: this user may not read the file; check its owner and permissions',
        { cause: error },
      );
    case 'EISDIR':
      return new ImageError('not-a-file', file, 'is a folder, not a photo file', { cause: error });
    default:
      return new ImageError(
        'read-failed',
        file,
        `could not read the file (${code ?? 'error'}: ${error instanceof Error ? error.message : String(error)}); check the disk or network share it is on`,
        { cause: error },
      );
  }
}
