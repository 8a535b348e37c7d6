import { createHash } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileErrorClass } from './errors.ts';

/** A file or folder Sagasu was asked to write (an output, a report, the library) that cannot be written. */
export class WriteError extends fileErrorClass('cannot-write') {}

/** Why writing `path` failed, in words, from the system's error code. */
export function writeError(path: string, error: unknown): WriteError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const reason =
    code === 'ENOENT'
      ? 'cannot be written: the folder it goes in does not exist'
      : code === 'ENOTDIR' || code === 'EEXIST'
        ? 'cannot be written: a part of the path is a file, not a folder'
        : code === 'EISDIR'
          ? 'cannot be written: it is a folder'
          : code === 'EACCES' || code === 'EPERM'
            ? 'cannot be written: permission denied'
            : code === 'EROFS'
              ? 'cannot be written: the disk is read-only'
              : code === 'ENOSPC'
                ? 'cannot be written: the disk is full'
                : `cannot be written (${code ?? 'error'}: ${error instanceof Error ? error.message : String(error)})`;
  return new WriteError(path, reason, { cause: error });
}

/**
 * `mkdir -p` that always ends. Node's recursive mkdir loops forever where a folder exists but a child cannot
 * be made in it with ENOENT (under /proc, `--report /proc/x`); here each level is tried at most twice.
 * Failures are WriteErrors naming the folder asked for.
 */
export async function makeDir(dir: string): Promise<void> {
  try {
    await makeLevel(dir);
  } catch (error) {
    throw error instanceof WriteError ? error : writeError(dir, error);
  }
}

async function makeLevel(dir: string): Promise<void> {
  try {
    await mkdir(dir);
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if ((await stat(dir)).isDirectory()) return;
      throw new WriteError(dir, 'is a file, not a folder');
    }
    if (code !== 'ENOENT' || dirname(dir) === dir) throw error;
  }
  await makeLevel(dirname(dir));
  await mkdir(dir).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code === 'EEXIST' && (await stat(dir)).isDirectory()) return;
    throw error.code === 'ENOENT' ? refused(dir, error) : error;
  });
}

/** Its folder is there, yet making it still says ENOENT: a file system that takes no new folders (/proc). */
function refused(dir: string, cause: unknown): WriteError {
  return new WriteError(dir, 'cannot be made: its file system does not take new folders there', { cause });
}

/** makeDir, synchronously. */
export function makeDirSync(dir: string): void {
  try {
    makeLevelSync(dir);
  } catch (error) {
    throw error instanceof WriteError ? error : writeError(dir, error);
  }
}

function makeLevelSync(dir: string): void {
  try {
    mkdirSync(dir);
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if (statSync(dir).isDirectory()) return;
      throw new WriteError(dir, 'is a file, not a folder');
    }
    if (code !== 'ENOENT' || dirname(dir) === dir) throw error;
  }
  makeLevelSync(dirname(dir));
  try {
    mkdirSync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && statSync(dir).isDirectory()) return;
    throw code === 'ENOENT' ? refused(dir, error) : error;
  }
}

/** `fn` over the items, at most `width` at a time (files read and hashed in parallel), results in input order. */
export async function mapPool<T, R>(
  items: readonly T[],
  width: number,
  fn: (item: T, k: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const k = next++;
      results[k] = await fn(items[k] as T, k);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return results;
}

/** A typed array's bytes as a Buffer, not copied (the .f32/.i32 files are written straight from them). */
export function bytesOf(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

/** The hex sha256 of bytes (a string: of its UTF-8), as every manifest and content key here writes it. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}
