import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { type CnnBackbone, IMAGENET_CLASSES } from '../cnn/index.ts';
import { ArgumentError, SagasuError } from '../errors.ts';
import { bytesOf, mapPool, sha256Hex } from '../files.ts';
import type { Thresholds } from '../fne/index.ts';
import { cacheDir } from '../paths.ts';
import { TOKENIZER_VERSION, tokenizeEnglish, UNK_ID, Vocabulary } from '../text/index.ts';
import { fillFeatureCache, openFeatureCache, type ProbsCache } from './feature-cache.ts';
import {
  BOGUS_CAPTION_IMAGE,
  type Flickr8kImage,
  type Flickr8kImageSplit,
  listImages,
  readCaptions,
  readManifest,
  requireFlickr8kDir,
} from './flickr8k.ts';

/** Bumped when the files or their meaning change, so a reader can refuse a layout it does not know. */
export const PREPARED_FORMAT = 'sagasu-flickr8k/1';
export const DEFAULT_MIN_COUNT = 4;
export const defaultPreparedDir = join(cacheDir, 'data', 'flickr8k');

/** The captions' files: the last of a prepared data set's, and all of a captions-only one's (prepare-ja.ts). */
export const CAPTION_FILES = [
  'vocab.txt',
  'captions.tsv',
  'tokens.i32',
  'offsets.i32',
  'caption_image.i32',
] as const;

/** The files of a prepared data set, in the order meta.json lists them. */
export const PREPARED_FILES = [
  'images.tsv',
  'fne.i8',
  'one_layer.f32',
  'layers.json',
  ...CAPTION_FILES,
] as const;
type PreparedFile = (typeof PREPARED_FILES)[number];

/** Beside meta.json, not in it: the preparation's identity (meta.json's sha256, which models record) stays. */
export const PROBS_FILE = 'probs.f32';
export const PROBS_META = 'probs.json';

export interface PreparedProbsMeta {
  format: 'sagasu-flickr8k-probs/1';
  /** sha256 of the meta.json these rows belong to. */
  metaSha256: string;
  images: number;
  classes: number;
  layout: string;
  file: { bytes: number; sha256: string };
}

async function writeProbs(
  out: string,
  images: readonly Flickr8kImage[],
  shas: readonly string[],
  cache: ProbsCache,
  metaText: string,
): Promise<void> {
  const file = await OutputFile.create(join(out, PROBS_FILE));
  let written: { bytes: number; sha256: string };
  try {
    for (const [i, img] of images.entries()) {
      const probs = await cache.get(shas[i] as string);
      if (!probs)
        throw new SagasuError(
          'cache-changed',
          cache.path(shas[i] as string),
          `probabilities of ${img.image} vanished`,
        );
      await file.write(probs);
    }
  } finally {
    written = await file.close();
  }
  await file.commit();
  const meta: PreparedProbsMeta = {
    format: 'sagasu-flickr8k-probs/1',
    metaSha256: sha256Hex(metaText),
    images: images.length,
    classes: IMAGENET_CLASSES,
    layout: `float32 little-endian [${images.length}, ${IMAGENET_CLASSES}] row-major: the classifier's probability of each ImageNet class (../shared/models/imagenet_synsets.txt order); row i = images.tsv index i`,
    file: written,
  };
  await writeFile(join(out, `${PROBS_META}.tmp`), `${JSON.stringify(meta, null, 2)}\n`);
  await rename(join(out, `${PROBS_META}.tmp`), join(out, PROBS_META));
}

interface PrepareOptions {
  /** Where the prepared files go (default .cache/data/flickr8k). */
  out?: string;
  /** The CNN (default mobilenet_v2); each needs its own statistics (npm run stats:compute -- --backbone). */
  backbone?: CnnBackbone;
  /** The Flickr8k folder (default ../shared/data/flickr8k or SAGASU_FLICKR8K). */
  dataDir?: string;
  /** Parent of the per-model feature cache folders (default .cache/features). */
  featureCacheRoot?: string;
  /** Ternarization thresholds (default the paper's, DEFAULT_THRESHOLDS): a generalization lever of issue 17. */
  thresholds?: Thresholds;
  minCount?: number;
  /** Only the first N images in file-name order, with their captions: quick runs and tests. */
  limitImages?: number;
  batchSize?: number;
  threads?: number;
  log?: (line: string) => void;
  /** Called after each image whose features had to be computed. */
  onProgress?: (done: number, total: number) => void;
}

interface SplitTokens {
  tokens: number;
  unknown: number;
}

interface PreparedMeta {
  format: string;
  dataset: string;
  limitImages: number | null;
  images: number;
  imagesBySplit: Record<Flickr8kImageSplit, number>;
  captions: number;
  emptyCaptions: number;
  skippedCaptions: { image: string; captions: number; why: string };
  tokens: number;
  fneDim: number;
  oneLayerDim: number;
  oneLayer: { name: string; offset: number };
  thresholds: Thresholds;
  vocab: { size: number; minCount: number; from: string; padId: 0; unkId: 1 };
  /** Token counts per split of the captions' images, and how many of them are <unk>. */
  tokensBySplit: Record<Flickr8kImageSplit, SplitTokens>;
  tokenizer: string;
  /** `backbone` is absent in folders prepared before ResNet-50 was added: those are mobilenet_v2's. */
  cnn: { backbone?: CnnBackbone; mode: string; onnxSha256: string; converterVersion: number };
  /** The statistics' own sha256 (of models/fne/stats.bin, as recorded in models/fne/stats.json). */
  stats: { sha256: string; images: number };
  layouts: Record<PreparedFile, string>;
  files: Record<PreparedFile, { bytes: number; sha256: string }>;
}

export interface PrepareReport {
  out: string;
  featureCacheDir: string;
  meta: PreparedMeta;
  /** Images whose features were computed by the CNN in this run (0 when the cache had them all). */
  computed: number;
  /** Images whose features came from the cache. */
  reused: number;
}

/** Writes a file under a temporary name while hashing what goes in; `commit` renames it into place. */
class OutputFile {
  private readonly hash = createHash('sha256');
  bytes = 0;
  private constructor(
    readonly path: string,
    private readonly handle: Awaited<ReturnType<typeof open>>,
  ) {}

  static async create(path: string): Promise<OutputFile> {
    return new OutputFile(path, await open(`${path}.tmp`, 'w'));
  }

  async write(data: ArrayBufferView | string): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : bytesOf(data);
    this.hash.update(bytes);
    this.bytes += bytes.length;
    let written = 0;
    while (written < bytes.length) written += (await this.handle.write(bytes, written)).bytesWritten;
  }

  async close(): Promise<{ bytes: number; sha256: string }> {
    await this.handle.close();
    return { bytes: this.bytes, sha256: this.hash.digest('hex') };
  }

  async commit(): Promise<void> {
    await rename(`${this.path}.tmp`, this.path);
  }
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1)
    throw new ArgumentError(name, `expected a positive integer, got ${value}`);
  return v;
}

const emptySplitCounts = <T>(make: () => T): Record<Flickr8kImageSplit, T> => ({
  train: make(),
  val: make(),
  test: make(),
  none: make(),
});

/** The training contract's token arrays: captions' ids concatenated, their offsets, their images, counts. */
interface EncodedCaptions {
  tokens: Int32Array;
  /** caption k = tokens[offsets[k]:offsets[k+1]] */
  offsets: Int32Array;
  captionImage: Int32Array;
  tokensBySplit: Record<Flickr8kImageSplit, SplitTokens>;
  emptyCaptions: number;
}

/** Token lists -> ids through `vocab` (the English and the Japanese preparation write the same arrays). */
export function encodeCaptions(
  tokenLists: readonly string[][],
  vocab: Vocabulary,
  imageOf: readonly number[],
  splitOf: readonly Flickr8kImageSplit[],
): EncodedCaptions {
  const offsets = new Int32Array(tokenLists.length + 1);
  const captionImage = Int32Array.from(imageOf);
  const tokensBySplit = emptySplitCounts<SplitTokens>(() => ({ tokens: 0, unknown: 0 }));
  let emptyCaptions = 0;
  const encoded = tokenLists.map((list, k) => {
    const ids = vocab.encode(list);
    offsets[k + 1] = (offsets[k] as number) + ids.length;
    if (ids.length === 0) emptyCaptions++;
    const counts = tokensBySplit[splitOf[k] as Flickr8kImageSplit];
    counts.tokens += ids.length;
    for (const id of ids) if (id === UNK_ID) counts.unknown++;
    return ids;
  });
  const tokens = new Int32Array(offsets[tokenLists.length] as number);
  for (const [k, ids] of encoded.entries()) tokens.set(ids, offsets[k] as number);
  return { tokens, offsets, captionImage, tokensBySplit, emptyCaptions };
}

/**
 * The training inputs of the joint space, computed with the engine's own image path so that training sees
 * exactly what the app will compute for a user's photo: the ternary FNE and the one-layer vector of every
 * Flickr8k photo, and every caption as token ids. The output depends only on its inputs (no timestamps, a
 * fixed order), so a rerun gives the same bytes; meta.json is written last, so a folder without one is
 * incomplete.
 */
export async function prepareFlickr8k(options: PrepareOptions = {}): Promise<PrepareReport> {
  const log = options.log ?? (() => {});
  const out = options.out ?? defaultPreparedDir;
  const dataDir = options.dataDir ?? requireFlickr8kDir();
  const minCount = positiveInteger('--min-count', options.minCount, DEFAULT_MIN_COUNT);
  const batchSize = positiveInteger('--batch-size', options.batchSize, 16);
  if (options.limitImages !== undefined) positiveInteger('--limit-images', options.limitImages, 1);
  // The .f32/.i32 files are little-endian by contract and written straight from typed arrays.
  if (endianness() !== 'LE')
    throw new SagasuError('unsupported-platform', 'data:prepare', 'needs a little-endian machine');

  const backbone = options.backbone ?? 'mobilenet_v2';
  const {
    mode,
    manifest,
    stats,
    cache,
    probs: probsCache,
  } = await openFeatureCache(backbone, options.featureCacheRoot, options.thresholds);
  const { fneDim } = manifest;
  const oneLayerDim = manifest.oneLayer.channels;

  // Images, verified against the data set's manifest when it has one.
  const allImages = await listImages(dataDir);
  const images: Flickr8kImage[] =
    options.limitImages !== undefined ? allImages.slice(0, options.limitImages) : allImages;
  const manifestEntries = await readManifest(dataDir);
  log(`data:prepare: hashing ${images.length} images`);
  const shas = await mapPool(images, 16, async (img) => sha256Hex(await readFile(img.path)));
  if (manifestEntries) {
    for (const [i, img] of images.entries()) {
      const entry = manifestEntries.get(img.image);
      if (!entry) throw new SagasuError('dataset-damaged', img.path, 'is not listed in manifest.tsv');
      if (entry.sha256 !== shas[i])
        throw new SagasuError(
          'dataset-damaged',
          img.path,
          `sha256 ${shas[i]}, manifest.tsv says ${entry.sha256}`,
        );
      if (entry.split !== img.split)
        throw new SagasuError(
          'dataset-damaged',
          img.path,
          `the split files say ${img.split}, manifest.tsv says ${entry.split}`,
        );
    }
  }

  // Features: what the cache lacks goes through the CNN, once per distinct content.
  const missing = new Map<string, string>();
  for (const [i, img] of images.entries()) {
    const sha = shas[i] as string;
    if (!missing.has(sha) && (!(await cache.get(sha)) || !(await probsCache.get(sha))))
      missing.set(sha, img.path);
  }
  const distinct = new Set(shas).size;
  log(
    `data:prepare: features of ${distinct - missing.size} images from ${cache.dir}, ${missing.size} to compute`,
  );
  await fillFeatureCache(
    cache,
    probsCache,
    [...missing],
    { backbone, mode, stats, ...(options.threads ? { threads: options.threads } : {}), log },
    { batchSize, onProgress: options.onProgress },
  );

  // Captions: those of the chosen images, in token-file order.
  const { captions, skipped } = await readCaptions(dataDir, log);
  const indexOf = new Map(allImages.map((img, i) => [img.image, i]));
  for (const c of captions)
    if (!indexOf.has(c.image))
      throw new SagasuError(
        'dataset-damaged',
        `${join(dataDir, 'Flickr8k.token.txt')}:${c.line}`,
        `caption of ${c.image}, which is not in images/`,
      );
  const kept = captions.filter((c) => (indexOf.get(c.image) as number) < images.length);
  const tokenLists = kept.map((c) => tokenizeEnglish(c.text));
  const splitOfCaption = kept.map((c) => (images[indexOf.get(c.image) as number] as Flickr8kImage).split);
  const vocab = Vocabulary.build(
    tokenLists.filter((_, k) => splitOfCaption[k] === 'train' || splitOfCaption[k] === 'val'),
    minCount,
  );

  // Files. The old meta.json goes first: a reader must never pair it with half-replaced files.
  await mkdir(out, { recursive: true });
  await rm(join(out, 'meta.json'), { force: true });
  const files = {} as PreparedMeta['files'];
  const outputs: OutputFile[] = [];
  const write = async (name: PreparedFile, fill: (f: OutputFile) => Promise<void>) => {
    const file = await OutputFile.create(join(out, name));
    try {
      await fill(file);
    } finally {
      files[name] = await file.close();
    }
    outputs.push(file);
  };

  await write('images.tsv', (f) =>
    f.write(
      [
        'index\timage\tsplit\tsha256\n',
        ...images.map((img, i) => `${i}\t${img.image}\t${img.split}\t${shas[i]}\n`),
      ].join(''),
    ),
  );
  const fneFile = await OutputFile.create(join(out, 'fne.i8'));
  const oneFile = await OutputFile.create(join(out, 'one_layer.f32'));
  try {
    for (const [i, img] of images.entries()) {
      const features = await cache.get(shas[i] as string);
      if (!features)
        throw new SagasuError(
          'cache-changed',
          cache.path(shas[i] as string),
          `features of ${img.image} vanished`,
        );
      await fneFile.write(features.fne);
      await oneFile.write(features.oneLayer);
    }
  } finally {
    files['fne.i8'] = await fneFile.close();
    files['one_layer.f32'] = await oneFile.close();
  }
  outputs.push(fneFile, oneFile);
  await write('layers.json', async (f) => {
    const layers = manifest.layers.map(({ name, kind, offset, channels }) => ({
      name,
      kind,
      offset,
      channels,
    }));
    await f.write(`${JSON.stringify(layers, null, 2)}\n`);
  });
  await write('vocab.txt', (f) => f.write(vocab.toText()));
  await write('captions.tsv', (f) =>
    f.write(
      [
        'index\timage_index\tn\tcaption\n',
        ...kept.map((c, k) => `${k}\t${indexOf.get(c.image)}\t${c.n}\t${c.text}\n`),
      ].join(''),
    ),
  );

  const { tokens, offsets, captionImage, tokensBySplit, emptyCaptions } = encodeCaptions(
    tokenLists,
    vocab,
    kept.map((c) => indexOf.get(c.image) as number),
    splitOfCaption,
  );
  await write('tokens.i32', (f) => f.write(tokens));
  await write('offsets.i32', (f) => f.write(offsets));
  await write('caption_image.i32', (f) => f.write(captionImage));

  for (const file of outputs) await file.commit();

  const imagesBySplit = emptySplitCounts(() => 0);
  for (const img of images) imagesBySplit[img.split]++;
  const meta: PreparedMeta = {
    format: PREPARED_FORMAT,
    dataset: 'Flickr8k (224x224 copies)',
    limitImages: options.limitImages ?? null,
    images: images.length,
    imagesBySplit,
    captions: kept.length,
    emptyCaptions,
    skippedCaptions: { image: BOGUS_CAPTION_IMAGE, captions: skipped, why: 'no such photo, in no split' },
    tokens: offsets[kept.length] as number,
    fneDim,
    oneLayerDim,
    oneLayer: { name: manifest.oneLayer.name, offset: manifest.oneLayer.offset },
    thresholds: cache.thresholds,
    vocab: { size: vocab.size, minCount, from: 'train+val captions', padId: 0, unkId: 1 },
    tokensBySplit,
    tokenizer: TOKENIZER_VERSION,
    // The default's meta.json keeps the bytes it had before backbones could be chosen.
    cnn: {
      ...(backbone === 'mobilenet_v2' ? {} : { backbone }),
      mode,
      onnxSha256: manifest.onnx.sha256,
      converterVersion: manifest.converterVersion,
    },
    stats: { sha256: stats.meta.sha256, images: stats.meta.images },
    layouts: {
      'images.tsv': 'UTF-8 TSV with header, no quoting; one row per image, sorted by file name',
      'fne.i8': `int8 [${images.length}, ${fneDim}] row-major, values -1/0/+1; row i = images.tsv index i`,
      'one_layer.f32': `float32 little-endian [${images.length}, ${oneLayerDim}] row-major, standardized`,
      'layers.json': 'the FNE columns of each pooled layer: [{name, kind, offset, channels}]',
      'vocab.txt': 'one token per line, id = line index (0-based); 0 <pad>, 1 <unk>',
      'captions.tsv': 'UTF-8 TSV with header, no quoting (captions contain quote marks, no tabs)',
      'tokens.i32': `int32 little-endian [${offsets[kept.length]}], all captions' token ids concatenated`,
      'offsets.i32': `int32 little-endian [${kept.length + 1}]; caption k = tokens[offsets[k]:offsets[k+1]]`,
      'caption_image.i32': `int32 little-endian [${kept.length}], images.tsv index of each caption`,
    },
    files,
  };
  const metaText = `${JSON.stringify(meta, null, 2)}\n`;
  await rm(join(out, PROBS_META), { force: true });
  await writeFile(join(out, 'meta.json.tmp'), metaText);
  await rename(join(out, 'meta.json.tmp'), join(out, 'meta.json'));
  await writeProbs(out, images, shas as string[], probsCache, metaText);
  log(
    `data:prepare: ${images.length} images, ${kept.length} captions (${emptyCaptions} with no tokens), ` +
      `${meta.tokens} tokens, vocabulary ${vocab.size} at min count ${minCount}, in ${out}`,
  );
  return {
    out,
    featureCacheDir: cache.dir,
    meta,
    computed: missing.size,
    reused: distinct - missing.size,
  };
}
