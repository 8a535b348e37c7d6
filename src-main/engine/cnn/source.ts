import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, type Stats } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { ModelError } from '../errors.ts';
import { cacheDir, sharedDir } from '../paths.ts';

/** One file the engine is built from: where it lives upstream and the exact bytes it must have. */
export interface UpstreamFile {
  readonly name: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly url: string;
}

/**
 * The upstream inputs of the CNN, pinned to commits so the URLs can never serve other bytes than the sha256
 * names (see shared/models/README.md). The short label file is not listed: it is derived from imagenetLabels.
 */
export const UPSTREAM_FILES = {
  model: {
    name: 'mobilenet_v2_1.0_224_quant.tflite',
    bytes: 3_577_952,
    sha256: '51e8256b05665529f8836fe6e8eeed41b2fc75a900d8eebda338d70a6726f8da',
    url: 'https://github.com/google-coral/edgetpu/raw/285cacf0a879e3e343abd38c33eb622ae253529c/test_data/mobilenet_v2_1.0_224_quant.tflite',
  },
  imagenetLabels: {
    name: 'imagenet_labels.txt',
    bytes: 21_686,
    sha256: 'b8aaeb5630c62626a7d124a05c0e14230a7ffdd2136a31d0190a4fb71c1d82f1',
    url: 'https://github.com/google-coral/test_data/raw/104342d2d3480b3e66203073dac24f4e2dbb4c41/imagenet_labels.txt',
  },
} as const satisfies Record<string, UpstreamFile>;

export interface ObtainOptions {
  /** Folder holding verified copies; default SAGASU_MODEL_MIRROR, else <shared>/models when present. */
  mirrorDir?: string;
  /** Where downloads land; default <cacheDir>/upstream. */
  destDir?: string;
  fetchImpl?: typeof fetch;
  log?: (line: string) => void;
}

/** Streams the file so a large model never has to sit in memory just to be checked. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Returns the path of a copy of `entry` whose size and sha256 have just been checked: the mirror's copy used
 * in place, else a cached or freshly downloaded copy in destDir. A mirror copy with other bytes is an error,
 * never a reason to download: a damaged or tampered mirror is something a person has to see and repair.
 */
export async function obtainUpstreamFile(entry: UpstreamFile, options: ObtainOptions = {}): Promise<string> {
  const log = options.log ?? (() => {});
  const mirrorDir = resolveMirrorDir(options);
  let tried: string;

  if (mirrorDir !== undefined) {
    const mirrorPath = join(mirrorDir, entry.name);
    const info = await statIfPresent(mirrorPath);
    if (info !== undefined) {
      await verifyMirrorCopy(entry, mirrorPath, info);
      log(`${entry.name}: using the mirror copy ${mirrorPath} (sha256 verified)`);
      return mirrorPath;
    }
    tried = `the mirror copy ${mirrorPath} (absent)`;
    log(`${entry.name}: not in the mirror ${mirrorDir}; trying the download`);
  } else {
    tried = 'no mirror (SAGASU_MODEL_MIRROR is unset and there is no shared models folder)';
  }

  const destDir = resolve(options.destDir ?? join(cacheDir, 'upstream'));
  const dest = join(destDir, entry.name);
  const cached = await statIfPresent(dest);
  if (cached?.isFile()) {
    if (cached.size === entry.bytes && (await sha256File(dest)) === entry.sha256) {
      log(`${entry.name}: reusing the verified download ${dest}`);
      return dest;
    }
    // Only our own cache: a copy that no longer verifies is replaced, not reported.
    log(`${entry.name}: the cached copy ${dest} does not verify; downloading it again`);
    await rm(dest, { force: true });
  }

  try {
    await mkdir(destDir, { recursive: true });
  } catch (err) {
    throw new ModelError(
      'download-failed',
      destDir,
      `cannot create the download folder: ${describeError(err)}`,
      {
        cause: err,
      },
    );
  }
  log(`${entry.name}: downloading ${entry.url}`);
  await download(entry, dest, options.fetchImpl ?? fetch, tried);
  log(`${entry.name}: downloaded and verified ${dest}`);
  return dest;
}

function resolveMirrorDir(options: ObtainOptions): string | undefined {
  if (options.mirrorDir !== undefined) return resolve(options.mirrorDir);
  const fromEnv = process.env.SAGASU_MODEL_MIRROR;
  if (fromEnv !== undefined && fromEnv !== '') return resolve(fromEnv);
  const shared = sharedDir();
  if (shared === undefined) return undefined;
  const models = join(shared, 'models');
  return existsSync(models) ? models : undefined;
}

async function statIfPresent(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new ModelError('missing', path, `cannot be examined: ${describeError(err)}`, { cause: err });
  }
}

async function verifyMirrorCopy(entry: UpstreamFile, path: string, info: Stats): Promise<void> {
  if (!info.isFile()) {
    throw new ModelError('invalid-model', path, `is in the model mirror but is not a regular file`);
  }
  let actual: string;
  try {
    actual = await sha256File(path);
  } catch (err) {
    throw new ModelError(
      'missing',
      path,
      `is in the model mirror but cannot be read: ${describeError(err)}`,
      {
        cause: err,
      },
    );
  }
  if (actual === entry.sha256 && info.size === entry.bytes) return;
  throw new ModelError(
    'sha256-mismatch',
    path,
    `sha256 mismatch in the model mirror: expected ${entry.sha256} (${entry.bytes} bytes), ` +
      `found ${actual} (${info.size} bytes). The mirror copy is damaged or altered, so it was not used and ` +
      `nothing was downloaded in its place. Replace it with the original from ${entry.url}, ` +
      `or point SAGASU_MODEL_MIRROR at a folder that holds the verified file.`,
  );
}

/**
 * Writes to a unique temp file beside `dest` (same filesystem, so the rename is atomic and concurrent setups
 * cannot see each other's half-written bytes), and removes it on any failure.
 */
async function download(entry: UpstreamFile, dest: string, fetchImpl: typeof fetch, tried: string) {
  const url = entry.url;
  const fail = (code: 'download-failed' | 'sha256-mismatch', why: string, cause?: unknown) =>
    new ModelError(
      code,
      url,
      `${why}. Tried ${tried}, then downloading ${url}. To fix: set SAGASU_MODEL_MIRROR to a folder that holds ` +
        `${entry.name} (sha256 ${entry.sha256}), or connect to the internet and run the setup again.`,
      cause === undefined ? undefined : { cause },
    );

  const tmp = join(dirname(dest), `.${entry.name}.${process.pid}.${randomBytes(4).toString('hex')}.part`);
  try {
    let response: Response;
    try {
      response = await fetchImpl(url, { redirect: 'follow' });
    } catch (err) {
      throw fail('download-failed', `the download failed: ${describeError(err)}`, err);
    }
    if (!response.ok) {
      await response.body?.cancel().catch(() => {});
      const status = `${response.status} ${response.statusText}`.trim();
      throw fail('download-failed', `the download failed: the server answered HTTP ${status}`);
    }
    if (response.body === null) throw fail('download-failed', 'the download failed: the server sent no body');

    const hash = createHash('sha256');
    let received = 0;
    let oversized = false;
    try {
      await pipeline(
        Readable.fromWeb(response.body as NodeReadableStream<Uint8Array>),
        async function* (source: AsyncIterable<Uint8Array>) {
          for await (const chunk of source) {
            received += chunk.byteLength;
            // Stop a wrong or endless body at once instead of filling the disk before the hash can say no.
            if (received > entry.bytes) {
              oversized = true;
              throw new Error('body longer than expected');
            }
            hash.update(chunk);
            yield chunk;
          }
        },
        createWriteStream(tmp, { flags: 'wx' }),
      );
    } catch (err) {
      if (oversized) {
        throw fail(
          'sha256-mismatch',
          `the downloaded bytes are wrong: the server sent more than the expected ${entry.bytes} bytes ` +
            `(expected sha256 ${entry.sha256})`,
        );
      }
      throw fail(
        'download-failed',
        `the download broke off after ${received} bytes: ${describeError(err)}`,
        err,
      );
    }
    const actual = hash.digest('hex');
    if (received !== entry.bytes || actual !== entry.sha256) {
      throw fail(
        'sha256-mismatch',
        `the downloaded bytes are wrong: expected sha256 ${entry.sha256} (${entry.bytes} bytes), ` +
          `got ${actual} (${received} bytes)`,
      );
    }
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** fetch reports "fetch failed" and hides the useful part (ECONNREFUSED, ENOTFOUND…) in its cause chain. */
function describeError(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    if (current instanceof Error) {
      const code = (current as NodeJS.ErrnoException).code;
      const text =
        code !== undefined && !current.message.includes(code)
          ? `${code}: ${current.message}`
          : current.message;
      if (text !== '' && !parts.includes(text)) parts.push(text);
      current = current.cause;
    } else {
      parts.push(String(current));
      break;
    }
  }
  return parts.length > 0 ? parts.join(': ') : 'unknown error';
}
