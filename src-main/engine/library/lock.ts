import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SagasuError } from '../errors.ts';
import { writeError } from '../files.ts';

/** Another Sagasu process (or another Library in this one) holds the library open. */
export class LibraryLockedError extends SagasuError {
  constructor(dir: string, reason: string) {
    super('library-locked', dir, reason);
  }
}

/** The library folder cannot be written (a read-only disk, or another user's folder): nothing can change. */
class LibraryReadOnlyError extends SagasuError {
  constructor(dir: string, options?: { cause?: unknown }) {
    super(
      'library-read-only',
      dir,
      'the library folder cannot be written (a read-only disk, or no permission), so photos cannot be indexed or edited here; `sagasu status` still reads it, or pick a writable folder with --library',
      options,
    );
  }
}

const READ_ONLY = new Set(['EROFS', 'EACCES', 'EPERM']);

export const LOCK_FILE = 'sagasu.lock';

/** Locks held by this process, so a second Library on the same folder is refused here too. */
const heldHere = new Set<string>();

/**
 * One writer per library: a lock file created exclusively (O_EXCL) holding the owner's pid. A lock whose pid
 * is no longer running (the app was killed) is stale and taken over; O_EXCL decides between two racers.
 * Returns the release function.
 */
export function acquireLock(dir: string): () => void {
  const file = join(dir, LOCK_FILE);
  if (heldHere.has(file)) {
    throw new LibraryLockedError(dir, 'this library is already open in this Sagasu process; close it first');
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code && READ_ONLY.has(code)) throw new LibraryReadOnlyError(dir, { cause: error });
      if (code !== 'EEXIST') throw writeError(file, error);
      const owner = readOwner(file);
      if (owner !== null && owner !== process.pid && alive(owner)) {
        throw new LibraryLockedError(
          dir,
          `this library is open in another Sagasu process (pid ${owner}); close that one first, or open another library folder`,
        );
      }
      // Stale (dead pid, our own pid left over from a crash before exec reuse, or an unreadable half-written lock).
      try {
        unlinkSync(file);
      } catch (unlinkError) {
        const code = (unlinkError as NodeJS.ErrnoException).code;
        if (code && READ_ONLY.has(code)) throw new LibraryReadOnlyError(dir, { cause: unlinkError });
        if (code !== 'ENOENT') throw writeError(file, unlinkError);
      }
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    heldHere.add(file);
    return () => {
      heldHere.delete(file);
      if (readOwner(file) === process.pid) {
        try {
          unlinkSync(file);
        } catch {
          // Already gone: nothing to release.
        }
      }
    };
  }
  throw new LibraryLockedError(dir, 'another process keeps taking the library lock; try again');
}

function readOwner(file: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
