/**
 * One piscina task per photo, on a worker thread: read the bytes once, hash them, decode to the CNN's input and
 * read EXIF. The main thread only batches the CNN and writes the catalog. Every outcome is data (never a
 * throw) so one bad file costs one result, not the pool.
 */
import { readFile, stat } from 'node:fs/promises';
import exifr from 'exifr';
import { SagasuError } from '../errors.ts';
import { sha256Hex } from '../files.ts';
import { decodeBufferForCnn } from '../image/index.ts';

export interface DecodeTask {
  path: string;
  /** 'hash' only reads and hashes (move and change detection); 'decode' does everything. */
  mode: 'hash' | 'decode';
}

interface FileStamp {
  bytes: number;
  mtimeMs: number;
}

export type DecodeResult =
  | { kind: 'gone'; path: string }
  /** The file changed while it was read: left pending for the next pass. */
  | { kind: 'unstable'; path: string }
  | ({ kind: 'failed'; path: string; reason: string; hash: string | null } & FileStamp)
  | ({ kind: 'hashed'; path: string; hash: string } & FileStamp)
  | ({
      kind: 'decoded';
      path: string;
      hash: string;
      pixels: Uint8Array;
      width: number;
      height: number;
      format: string;
      takenAt: string | null;
      camera: string | null;
    } & FileStamp);

export default async function run(task: DecodeTask): Promise<DecodeResult> {
  const { path } = task;
  let before: FileStamp;
  let bytes: Buffer;
  try {
    const s = await stat(path);
    before = { bytes: s.size, mtimeMs: Math.floor(s.mtimeMs) };
    if (!s.isFile())
      return { kind: 'failed', path, reason: 'not-a-file: is not a regular file', hash: null, ...before };
    bytes = await readFile(path);
    const after = await stat(path);
    if (
      after.size !== before.bytes ||
      Math.floor(after.mtimeMs) !== before.mtimeMs ||
      bytes.length !== after.size
    ) {
      return { kind: 'unstable', path };
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'gone', path };
    const reason =
      code === 'EACCES' || code === 'EPERM'
        ? 'permission-denied: this user may not read the file'
        : `read-failed: ${error instanceof Error ? error.message : String(error)}`;
    return { kind: 'failed', path, reason, hash: null, bytes: 0, mtimeMs: 0 };
  }
  const hash = sha256Hex(bytes);
  if (task.mode === 'hash') return { kind: 'hashed', path, hash, ...before };
  try {
    const decoded = await decodeBufferForCnn(bytes, path);
    const exif = await readExif(bytes);
    return {
      kind: 'decoded',
      path,
      hash,
      ...before,
      // Copied by structured clone (150 KB): a nested piscina move() would arrive as its wrapper object.
      pixels: decoded.pixels,
      width: decoded.width,
      height: decoded.height,
      format: decoded.format,
      ...exif,
    };
  } catch (error) {
    if (!(error instanceof SagasuError)) throw error;
    return { kind: 'failed', path, reason: `${error.code}: ${error.reason}`, hash, ...before };
  }
}

async function readExif(bytes: Buffer): Promise<{ takenAt: string | null; camera: string | null }> {
  try {
    // Raw strings: EXIF dates have no zone, so they stay wall-clock as the camera wrote them.
    const tags = (await exifr.parse(bytes, {
      pick: ['DateTimeOriginal', 'CreateDate', 'Make', 'Model'],
      reviveValues: false,
    })) as Record<string, unknown> | undefined;
    if (!tags) return { takenAt: null, camera: null };
    const raw = [tags.DateTimeOriginal, tags.CreateDate].find((v) => typeof v === 'string') as
      | string
      | undefined;
    const m = raw?.match(/^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})/);
    const takenAt = m && m[1] !== '0000' ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}` : null;
    const make = typeof tags.Make === 'string' ? tags.Make.trim() : '';
    const model = typeof tags.Model === 'string' ? tags.Model.trim() : '';
    // Many models already start with the make ("Canon EOS 5D"): don't say it twice.
    const camera = model.toLowerCase().startsWith(make.toLowerCase()) ? model : `${make} ${model}`.trim();
    return { takenAt, camera: camera || null };
  } catch {
    // A broken EXIF block is common and harmless: the photo still indexes, dated by its mtime.
    return { takenAt: null, camera: null };
  }
}
