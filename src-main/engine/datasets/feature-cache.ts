import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  backboneMode,
  type CnnBackbone,
  IMAGENET_CLASSES,
  imagenetClassProbs,
  verifiedCnn,
} from '../cnn/index.ts';
import { type ImageError, SagasuError } from '../errors.ts';
import { bytesOf } from '../files.ts';
import {
  DEFAULT_THRESHOLDS,
  type ExtractorOptions,
  FneExtractor,
  isPaperThresholds,
  loadStats,
  statsPaths,
  type Thresholds,
} from '../fne/index.ts';
import { cacheDir } from '../paths.ts';

const defaultFeatureCacheRoot = join(cacheDir, 'features');

/**
 * The built CNN of a backbone (MobileNetV2 in its default mode, the others float), its FNE statistics (refused
 * when computed with another CNN), and the caches of features and class probabilities they name.
 */
export async function openFeatureCache(
  backbone: CnnBackbone,
  root?: string,
  thresholds: Thresholds = DEFAULT_THRESHOLDS,
) {
  const mode = backboneMode(backbone);
  const manifest = await verifiedCnn(mode, undefined, backbone);
  const files = statsPaths(backbone);
  const stats = await loadStats(files.bin, files.meta);
  if (stats.meta.cnnSha256 !== manifest.onnx.sha256 || stats.meta.mode !== mode)
    throw new SagasuError(
      'stats-mismatch',
      files.meta,
      `the statistics were computed with the ${stats.meta.mode} model ${stats.meta.cnnSha256}, not the ${mode} model ${manifest.onnx.sha256}; run \`npm run stats:compute${backbone === 'mobilenet_v2' ? '' : ` -- --backbone ${backbone}`}\``,
    );
  // Other thresholds get a folder of their own, so the paper's files stay where they are.
  const own = isPaperThresholds(thresholds) ? '' : `-t${thresholds.negative}_${thresholds.positive}`;
  const dir = `${featureCacheDir(manifest.onnx.sha256, stats.meta.sha256, root)}${own}`;
  const cache = new FeatureCache(dir, manifest.fneDim, manifest.oneLayer.channels, thresholds);
  return { mode, manifest, stats, cache, probs: new ProbsCache(dir) };
}

// Feature cache: one file per image content, so renaming or moving a photo costs nothing and a killed run
// loses at most the batch in flight.

const CACHE_MAGIC = 'SGF1';
const CACHE_HEADER = 20;

/**
 * The folder is named by the model and the statistics, the two inputs that change every value; the
 * thresholds and dimensions sit in each file's header, so a file written under other ones is recomputed
 * instead of being read as if it were current.
 */
export function featureCacheDir(
  cnnSha256: string,
  statsSha256: string,
  root = defaultFeatureCacheRoot,
): string {
  return join(root, `${cnnSha256.slice(0, 16)}-${statsSha256.slice(0, 16)}`);
}

export interface CachedFeatures {
  fne: Int8Array;
  oneLayer: Float32Array;
}

/**
 * Layout: "SGF1", uint32 fneDim, uint32 oneLayerDim, float32 positive and negative thresholds (all
 * little-endian), then int8 fne[fneDim], then float32 oneLayer[oneLayerDim]. 17,056 is a multiple of 4, so
 * the floats stay aligned.
 */
export class FeatureCache {
  constructor(
    readonly dir: string,
    readonly fneDim: number,
    readonly oneLayerDim: number,
    readonly thresholds: Thresholds = DEFAULT_THRESHOLDS,
  ) {}

  get fileBytes(): number {
    return CACHE_HEADER + this.fneDim + 4 * this.oneLayerDim;
  }

  path(sha256: string): string {
    return join(this.dir, sha256.slice(0, 2), `${sha256}.bin`);
  }

  private header(): Buffer {
    const h = Buffer.alloc(CACHE_HEADER);
    h.write(CACHE_MAGIC, 0, 'ascii');
    h.writeUInt32LE(this.fneDim, 4);
    h.writeUInt32LE(this.oneLayerDim, 8);
    h.writeFloatLE(this.thresholds.positive, 12);
    h.writeFloatLE(this.thresholds.negative, 16);
    return h;
  }

  /** The cached features of an image, or undefined when absent or not written under the current settings. */
  async get(sha256: string): Promise<CachedFeatures | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.path(sha256));
    } catch {
      return undefined;
    }
    if (bytes.length !== this.fileBytes || !bytes.subarray(0, CACHE_HEADER).equals(this.header()))
      return undefined;
    const body = bytes.buffer.slice(bytes.byteOffset + CACHE_HEADER, bytes.byteOffset + bytes.length);
    return {
      fne: new Int8Array(body, 0, this.fneDim),
      oneLayer: new Float32Array(body, this.fneDim, this.oneLayerDim),
    };
  }

  /** Written to a temporary name and renamed, so a reader never sees half a file. */
  async put(sha256: string, features: CachedFeatures): Promise<void> {
    if (features.fne.length !== this.fneDim || features.oneLayer.length !== this.oneLayerDim)
      throw new Error(
        `feature sizes ${features.fne.length}/${features.oneLayer.length} do not match the cache`,
      );
    const file = this.path(sha256);
    await mkdir(join(this.dir, sha256.slice(0, 2)), { recursive: true });
    const temp = `${file}.${process.pid}.tmp`;
    await writeFile(temp, Buffer.concat([this.header(), bytesOf(features.fne), bytesOf(features.oneLayer)]));
    await rename(temp, file);
  }
}

const PROBS_MAGIC = 'SGP1';

/**
 * The classifier's probabilities of one image content, beside its features (`<sha>.probs`: "SGP1", uint32
 * class count, float32 probabilities of the ImageNet classes 0..999). A separate file, so the feature files
 * other checkouts read keep their layout.
 */
export class ProbsCache {
  constructor(readonly dir: string) {}

  path(sha256: string): string {
    return join(this.dir, sha256.slice(0, 2), `${sha256}.probs`);
  }

  async get(sha256: string): Promise<Float32Array | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.path(sha256));
    } catch {
      return undefined;
    }
    if (bytes.length !== 8 + 4 * IMAGENET_CLASSES || bytes.toString('ascii', 0, 4) !== PROBS_MAGIC)
      return undefined;
    if (bytes.readUInt32LE(4) !== IMAGENET_CLASSES) return undefined;
    return new Float32Array(bytes.buffer.slice(bytes.byteOffset + 8, bytes.byteOffset + bytes.length));
  }

  /** `outputs`: the CNN's classifier row as it comes (the class mapping is applied here, once). */
  async put(sha256: string, outputs: Float32Array): Promise<void> {
    const probs = imagenetClassProbs(outputs);
    const header = Buffer.alloc(8);
    header.write(PROBS_MAGIC, 0, 'ascii');
    header.writeUInt32LE(probs.length, 4);
    const file = this.path(sha256);
    await mkdir(join(this.dir, sha256.slice(0, 2)), { recursive: true });
    const temp = `${file}.${process.pid}.tmp`;
    await writeFile(temp, Buffer.concat([header, bytesOf(probs)]));
    await rename(temp, file);
  }
}

/**
 * Runs the CNN on the contents the cache lacks (each its sha256 and one file holding it) and stores their
 * features and class probabilities; returns how many it stored. A file the CNN cannot read goes to
 * `onFailure` with its index in `pending`, or ends the run without it.
 */
export async function fillFeatureCache(
  cache: FeatureCache,
  probs: ProbsCache,
  pending: ReadonlyArray<readonly [sha256: string, file: string]>,
  extractorOptions: ExtractorOptions,
  options: {
    batchSize: number;
    onProgress?: (done: number, total: number) => void;
    onFailure?: (k: number, error: ImageError) => void;
  },
): Promise<number> {
  if (pending.length === 0) return 0;
  const extractor = await FneExtractor.open({ ...extractorOptions, thresholds: cache.thresholds });
  let computed = 0;
  try {
    let done = 0;
    for await (const result of extractor.extract(
      pending.map(([, file]) => file),
      { batchSize: options.batchSize },
    )) {
      const k = done++;
      if (result.ok) {
        const { fne, oneLayer } = result.features;
        if (!fne) throw new Error('the extractor ran without statistics');
        const sha = (pending[k] as readonly [string, string])[0];
        await cache.put(sha, { fne, oneLayer });
        await probs.put(sha, result.features.probs);
        computed++;
      } else if (options.onFailure) options.onFailure(k, result.error);
      else throw result.error;
      options.onProgress?.(done, pending.length);
    }
  } finally {
    await extractor.close();
  }
  return computed;
}
