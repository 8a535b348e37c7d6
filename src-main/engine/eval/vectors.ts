import { join } from 'node:path';
import { type CnnBackbone, sha256File } from '../cnn/index.ts';
import {
  type CachedFeatures,
  type FeatureCache,
  fillFeatureCache,
  openFeatureCache,
  type ProbsCache,
} from '../datasets/feature-cache.ts';
import { SagasuError } from '../errors.ts';
import { mapPool } from '../files.ts';
import type { Thresholds } from '../fne/index.ts';
import { decodeForCnn } from '../image/index.ts';
import { cacheDir } from '../paths.ts';

/** Where `sagasu eval` keeps image features, one folder per CNN and statistics (see FeatureCache). */
const defaultVectorCacheRoot = join(cacheDir, 'eval-vectors');

export interface ImageFailure {
  /** Index into the data set's images. */
  image: number;
  file: string;
  code: string;
  reason: string;
}

/** Every image's features, found by content in the cache (computed first where missing). */
export interface ImageFeatureSet {
  cache: FeatureCache;
  /** The classifier's probabilities, beside the features (the `search` row ranks with them). */
  probs: ProbsCache;
  /** sha256 of each image's bytes; undefined for an image that failed. */
  sha256: (string | undefined)[];
  failed: ImageFailure[];
  /** Contents whose features the CNN computed in this run, and those read from the cache. */
  computed: number;
  reused: number;
  seconds: { hash: number; cnn: number };
}

export interface FeatureOptions {
  /** The CNN the models project (default mobilenet_v2); each keeps its own cache folder. */
  backbone?: CnnBackbone;
  /** The ternarization the models were trained on (jointThresholds; default the paper's). */
  thresholds?: Thresholds;
  /** Parent of the per-model cache folders (default .cache/eval-vectors). */
  cacheRoot?: string;
  batchSize?: number;
  threads?: number;
  log?: (line: string) => void;
  /** After each image the CNN had to compute. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Hashes every image, then runs the CNN only on contents the cache lacks. Features are keyed by the bytes'
 * sha256, so renamed or copied photos cost nothing and a second run on the same photos never touches the CNN.
 * An image that cannot be read or decoded is listed with its reason and the rest go on.
 */
export async function imageFeatures(files: readonly string[], options: FeatureOptions = {}) {
  const log = options.log ?? (() => {});
  const backbone = options.backbone ?? 'mobilenet_v2';
  const { stats, cache, probs } = await openFeatureCache(
    backbone,
    options.cacheRoot ?? defaultVectorCacheRoot,
    options.thresholds,
  );
  const t0 = performance.now();
  const failed: ImageFailure[] = [];
  const sha256 = await mapPool(files, 8, async (file, image) => {
    try {
      return await sha256File(file);
    } catch {
      // The decoder's reader names every way a file can be unreadable (missing, a folder, permissions).
      const error = await decodeForCnn(file).then(
        () => undefined,
        (e: unknown) => e,
      );
      const e = error as { code?: string; reason?: string; message?: string } | undefined;
      failed.push({
        image,
        file,
        code: e?.code ?? 'read-failed',
        reason: e?.reason ?? e?.message ?? 'unreadable',
      });
      return undefined;
    }
  });
  const missing = new Map<string, number[]>();
  for (const [image, sha] of sha256.entries()) {
    if (!sha) continue;
    if (!missing.has(sha) && (await cache.get(sha)) !== undefined && (await probs.get(sha)) !== undefined)
      continue;
    missing.set(sha, [...(missing.get(sha) ?? []), image]);
  }
  const t1 = performance.now();
  const distinct = new Set(sha256.filter(Boolean)).size;
  log(`eval: features of ${distinct - missing.size} images from ${cache.dir}, ${missing.size} to compute`);
  const pending = [...missing];
  const computed = await fillFeatureCache(
    cache,
    probs,
    pending.map(([sha, images]) => [sha, files[images[0] as number] as string] as const),
    { backbone, stats, ...(options.threads ? { threads: options.threads } : {}), log },
    {
      batchSize: options.batchSize ?? 16,
      onProgress: options.onProgress,
      onFailure: (k, error) => {
        for (const image of (pending[k] as [string, number[]])[1]) {
          failed.push({ image, file: files[image] as string, code: error.code, reason: error.reason });
          sha256[image] = undefined;
        }
      },
    },
  );
  const t2 = performance.now();
  failed.sort((a, b) => a.image - b.image);
  return {
    cache,
    probs,
    sha256,
    failed,
    computed,
    reused: distinct - missing.size,
    seconds: { hash: (t1 - t0) / 1000, cnn: (t2 - t1) / 1000 },
  } satisfies ImageFeatureSet;
}

/** The cached features of one content; a cache emptied under a running evaluation is an error, not a guess. */
export async function readFeatures(
  cache: FeatureCache,
  sha256: string,
  file: string,
): Promise<CachedFeatures> {
  const features = await cache.get(sha256);
  if (!features)
    throw new SagasuError(
      'cache-changed',
      cache.path(sha256),
      `the features of ${file} vanished from the cache during the run; run again`,
    );
  return features;
}

/** The cached class probabilities of one content (written with its features). */
export async function readProbs(cache: ProbsCache, sha256: string, file: string): Promise<Float32Array> {
  const probs = await cache.get(sha256);
  if (!probs)
    throw new SagasuError(
      'cache-changed',
      cache.path(sha256),
      `the class probabilities of ${file} vanished from the cache during the run; run again`,
    );
  return probs;
}
