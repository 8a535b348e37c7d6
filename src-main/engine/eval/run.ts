import { readdir } from 'node:fs/promises';
import { basename } from 'node:path';
import { LayerExplainer } from '../describe/index.ts';
import { ArgumentError, SagasuError } from '../errors.ts';
import { type ImageInput, JointModel, jointModelsDir, listJointModels } from '../joint/index.ts';
import {
  type FeatureKind,
  jointBackbone,
  jointThresholds,
  MANIFEST_FILE,
  readJointManifest,
} from '../modelfiles/index.ts';
import { UNK_ID } from '../text/index.ts';
import {
  type CaptionLang,
  detectLang,
  type EvalDataset,
  type LoadDatasetOptions,
  loadEvalDataset,
} from './datasets.ts';
import { evaluateRetrieval, type RankMetrics, type RetrievalMetrics } from './protocol.ts';
import { defaultSearchSetup, evaluateSearch, type SearchSetup } from './search.ts';
import { type FeatureOptions, type ImageFailure, imageFeatures, readFeatures, readProbs } from './vectors.ts';

export type EmbeddingChoice = 'fne' | 'one-layer' | 'both';
export const EMBEDDING_CHOICES: readonly EmbeddingChoice[] = ['fne', 'one-layer', 'both'];
export type EvalLang = 'en' | 'ja' | 'auto';

export interface RunEvalOptions extends FeatureOptions, Omit<LoadDatasetOptions, 'lang' | 'log'> {
  /** One model directory, or a folder of them (default models/joint). */
  model?: string;
  embedding?: EmbeddingChoice;
  /** The sentence encoder: en, ja, or auto (default: the script most captions are written in). */
  lang?: EvalLang;
  /** Retrieval failures to keep per model, worst first (default 20). */
  worst?: number;
  /** Photos ranked above the expected one to keep per failure (default 5). */
  above?: number;
  /** Opens a model with the sentence encoder of a language (default openModelFor). */
  openModel?: (dir: string, lang: CaptionLang) => Promise<JointModel>;
  /**
   * Per-layer "why this match" averaged over correct top-1 matches (default: explainLayers, on the models
   * whose score splits by layer); false leaves that part of the report out.
   */
  explain?: LayerExplain | false;
  /** Correct matches averaged for `explain`, an even sample (default EXPLAIN_PAIRS). */
  explainPairs?: number;
  /**
   * The `search` row, what the app ranks by (FNE + concepts + keywords, fused): default the concept lexicon
   * and the weights models/search.json holds for the FNE model; false leaves the row out.
   */
  search?: SearchSetup | false;
}

/** Averages per-layer contributions over pairs (image features, caption vector) of one model. */
export type LayerExplain = (
  dir: string,
  pairs: ReadonlyArray<{ image: ImageInput; caption: Float32Array }>,
) => Promise<LayerShares | undefined>;

export interface LayerShares {
  /** Pairs averaged. */
  pairs: number;
  layers: Array<{ name: string; block: string; contribution: number }>;
  blocks: Array<{ block: string; contribution: number }>;
  score: number;
}

/** The figures of one direction as `--json` prints them. */
export type DirectionFigures = Omit<RankMetrics, 'queries'>;

export interface ModelFigures {
  model: string;
  dir: string;
  features: FeatureKind;
  dim: number;
  i2t: DirectionFigures;
  t2i: DirectionFigures;
  rsum: number;
}

function figures(name: string, dir: string, model: JointModel, result: RetrievalMetrics): ModelFigures {
  const strip = ({ queries: _q, ...rest }: RankMetrics): DirectionFigures => rest;
  const { features } = model.manifest;
  return {
    model: name,
    dir,
    features,
    dim: model.dim,
    i2t: strip(result.i2t),
    t2i: strip(result.t2i),
    rsum: result.rsum,
  };
}

export interface RetrievalFailure {
  /** Index into the data set's captions. */
  caption: number;
  text: string;
  where: string;
  /** Rank of the expected photo (ties counted against it) among all ranked photos. */
  rank: number;
  expected: { image: number; file: string; score: number };
  /** The best-scoring photos ranked above it, best first (at most `above`). */
  above: Array<{ image: number; file: string; score: number }>;
}

export interface ModelDetails {
  /** The `worst` captions whose photo ranked lowest, worst first (ties: the data set's order). */
  failures: RetrievalFailure[];
  /** Correct top-1 retrievals (caption -> its photo ranked first). */
  correctTop1: number;
  layers?: LayerShares;
  seconds: { text: number; image: number; ranking: number; failures: number; explain: number };
}

export interface SkippedCaption {
  where: string;
  text: string;
  reason: string;
}

export interface EvalRun {
  dataset: string;
  format: EvalDataset['format'];
  split?: string;
  lang: CaptionLang;
  /** Images and captions that were ranked (after what was skipped). */
  images: number;
  captions: number;
  skipped: {
    images: ImageFailure[];
    captions: SkippedCaption[];
    /** Photos left without a caption (none given, or all skipped): annotation cannot rank them. */
    uncaptioned: string[];
  };
  results: Partial<Record<string, ModelFigures>>;
  /** fne minus one-layer, when both ran. */
  difference?: { i2t: DirectionFigures; t2i: DirectionFigures; rsum: number };
  /** Things a reader of the figures should know. */
  notes: string[];
  /** Captions kept although every word is unknown to the model (they encode as <unk>, as in training). */
  unknownOnly: SkippedCaption[];
  details: Partial<Record<string, ModelDetails>>;
  /** Files of the ranked images and captions, for reports: ranked row -> data set index. */
  rankedImages: Int32Array;
  rankedCaptions: Int32Array;
  imageFiles: readonly string[];
  features: { cacheDir: string; computed: number; reused: number };
  seconds: { load: number; hash: number; cnn: number; total: number };
}

/**
 * The model with `lang` as its sentence encoder: English is the model's own; another language is a text-only
 * encoder trained into the model's space (JointModel finds it beside the model directory).
 */
function openModelFor(dir: string, lang: CaptionLang): Promise<JointModel> {
  return JointModel.open(dir, { textLanguage: lang });
}

interface ChosenModel {
  key: string;
  dir: string;
}

/**
 * The model directories to evaluate: `dir` itself when it is one model, else its sub-folders, picked by the
 * features they were trained on (fne, one-layer). A missing half of `both` is a note; a missing asked-for
 * model is an error.
 */
async function chooseModels(
  dir: string | undefined,
  embedding: EmbeddingChoice,
): Promise<{ models: ChosenModel[]; notes: string[] }> {
  const root = dir ?? jointModelsDir;
  const wanted: FeatureKind[] = embedding === 'both' ? ['fne', 'one-layer'] : [embedding];
  const notes: string[] = [];
  const isModel = (await readdir(root).catch(() => undefined))?.includes(MANIFEST_FILE);
  const candidates = isModel ? [root] : await listJointModels(root);
  if (candidates.length === 0)
    throw new SagasuError(
      'no-model',
      root,
      'holds no joint model (a model directory holds manifest.json); pass --model <dir>',
    );
  const byKind = new Map<string, string>();
  for (const candidate of candidates) {
    const manifest = await readJointManifest(candidate);
    // Prefer the folder named after its kind (models/joint/fne), so a language variant never displaces it.
    if (!byKind.has(manifest.features) || basename(candidate) === manifest.features)
      byKind.set(manifest.features, candidate);
  }
  const models: ChosenModel[] = [];
  for (const kind of wanted) {
    const found = byKind.get(kind);
    if (found) models.push({ key: kind, dir: found });
  }
  if (models.length === 0)
    throw new ArgumentError(
      '--model',
      `${root} holds no ${wanted.join(' or ')} model (it has: ${[...byKind].map(([k, d]) => `${k} in ${d}`).join(', ')})`,
    );
  if (models.length < wanted.length)
    notes.push(
      `only the ${models.map((m) => m.key).join(', ')} model is in ${root}: evaluating that one, no comparison`,
    );
  return { models, notes };
}

/** Images per projection batch: the FNE of 256 images is 4 MB, and no more than a batch is ever held. */
const IMAGE_BLOCK = 256;

/**
 * `sagasu eval`: a captioned data set -> both embeddings' R@K figures on the same images and captions.
 *
 * What every model sees is fixed before any model runs: images that fail to decode, captions with no words
 * for any of the models, and photos left without a caption are out for all of them. Memory stays bounded:
 * image features are read from the cache a block at a time and only the D-dimensional vectors are kept;
 * scoring is blocked (protocol.ts).
 */
export async function runEval(datasetPath: string, options: RunEvalOptions = {}): Promise<EvalRun> {
  const t0 = performance.now();
  const log = options.log ?? (() => {});
  const embedding = options.embedding ?? 'both';
  if (!EMBEDDING_CHOICES.includes(embedding))
    throw new ArgumentError('--embedding', `expected fne, one-layer or both, got "${embedding}"`);
  const worst = options.worst ?? 20;
  const aboveCount = options.above ?? 5;
  const { models, notes } = await chooseModels(options.model, embedding);
  const dataset = await loadEvalDataset(datasetPath, {
    ...(options.split ? { split: options.split } : {}),
    ...(options.images ? { images: options.images } : {}),
    ...(options.lang ? { lang: options.lang } : {}),
    log,
  });
  const lang: CaptionLang =
    options.lang === 'ja' || options.lang === 'en'
      ? options.lang
      : (dataset.lang ?? detectLang(dataset.captions.map((c) => c.text)));
  const openModel = options.openModel ?? openModelFor;
  // Opened before the CNN runs, so a missing encoder or a damaged model stops the run in seconds.
  const opened: JointModel[] = [];
  const refused: string[] = [];
  try {
    for (const m of [...models]) {
      try {
        opened.push(await openModel(m.dir, lang));
      } catch (error) {
        // A model without an encoder for this language leaves the comparison, not the run.
        if (!(error instanceof SagasuError) || error.subject !== 'lang' || lang === 'en') throw error;
        refused.push(`${m.key}: ${error.reason}`);
        models.splice(models.indexOf(m), 1);
      }
    }
  } catch (error) {
    await Promise.all(opened.map((model) => model.close()));
    throw error;
  }
  if (opened.length === 0)
    throw new SagasuError(
      'no-encoder',
      '--lang',
      `no ${lang === 'ja' ? 'Japanese' : lang} sentence encoder is installed for ${refused.join('; ')}${options.lang === 'auto' || !options.lang ? `; the captions read as ${lang} (--lang auto); pass --lang en to force English` : ''}`,
    );
  if (refused.length > 0) notes.push(`not evaluated in ${lang}: ${refused.join('; ')}`);
  try {
    const t1 = performance.now();
    const backbones = [...new Set(opened.map((model) => jointBackbone(model.manifest)))];
    if (backbones.length > 1)
      throw new ArgumentError(
        '--model',
        `the models project different CNNs (${opened.map((m) => `${m.dir}: ${jointBackbone(m.manifest)}`).join(', ')}); evaluate each on its own`,
      );
    const thresholds = [...new Set(opened.map((model) => JSON.stringify(jointThresholds(model.manifest))))];
    if (thresholds.length > 1)
      throw new ArgumentError(
        '--model',
        `the models were trained on differently ternarized features (${opened.map((m) => `${m.dir}: ${JSON.stringify(jointThresholds(m.manifest))}`).join(', ')}); evaluate each on its own`,
      );
    const features = await imageFeatures(dataset.images, {
      ...options,
      backbone: backbones[0],
      thresholds: jointThresholds((opened[0] as JointModel).manifest),
    });

    // The common ground: captions every model can read, images with features and a caption left.
    const skippedCaptions: SkippedCaption[] = [];
    const unknownOnly: SkippedCaption[] = [];
    const tokenIds: Int32Array[][] = opened.map(() => []);
    const keptCaptions: number[] = [];
    const hasFeatures = features.sha256.map((s) => s !== undefined);
    for (const [k, caption] of dataset.captions.entries()) {
      if (!hasFeatures[caption.image]) continue;
      const ids = opened.map((model) => model.text.tokenIds(caption.text));
      if (ids.some((t) => t.length === 0)) {
        skippedCaptions.push({ where: caption.where, text: caption.text, reason: 'no words to encode' });
        continue;
      }
      if (ids.some((t) => t.every((id) => id === UNK_ID)))
        unknownOnly.push({
          where: caption.where,
          text: caption.text,
          reason: 'every word unknown to the model',
        });
      for (const [m, t] of ids.entries()) (tokenIds[m] as Int32Array[]).push(t);
      keptCaptions.push(k);
    }
    const captioned = new Uint8Array(dataset.images.length);
    for (const k of keptCaptions) captioned[(dataset.captions[k] as { image: number }).image] = 1;
    const rankedImages: number[] = [];
    const uncaptioned: string[] = [];
    const rowOf = new Int32Array(dataset.images.length).fill(-1);
    for (let i = 0; i < dataset.images.length; i++) {
      if (!hasFeatures[i]) continue;
      if (!captioned[i]) {
        uncaptioned.push(dataset.images[i] as string);
        continue;
      }
      rowOf[i] = rankedImages.length;
      rankedImages.push(i);
    }
    if (rankedImages.length === 0)
      throw new SagasuError(
        'nothing-to-rank',
        datasetPath,
        `no photo is left with features and a usable caption (${features.failed.length} failed to decode, ${skippedCaptions.length} captions had no words)`,
      );
    const captionImage = Int32Array.from(
      keptCaptions,
      (k) => rowOf[(dataset.captions[k] as { image: number }).image] as number,
    );
    const imageFile = (row: number) => dataset.images[rankedImages[row] as number] as string;
    const featuresOf = (row: number) => {
      const i = rankedImages[row] as number;
      return readFeatures(features.cache, features.sha256[i] as string, dataset.images[i] as string);
    };

    const results: EvalRun['results'] = {};
    const details: EvalRun['details'] = {};
    let fneVectors:
      | { images: Float32Array; captions: Float32Array; model: JointModel; dir: string }
      | undefined;
    for (const [m, model] of opened.entries()) {
      const { key, dir } = models[m] as ChosenModel;
      log(`eval: ${key} (${dir}): ${rankedImages.length} images, ${keptCaptions.length} captions`);
      const s0 = performance.now();
      const captions = await model.text.encodeIds(tokenIds[m] as Int32Array[]);
      const s1 = performance.now();
      const images = new Float32Array(rankedImages.length * model.dim);
      for (let start = 0; start < rankedImages.length; start += IMAGE_BLOCK) {
        const rows = Array.from(
          { length: Math.min(IMAGE_BLOCK, rankedImages.length - start) },
          (_, r) => start + r,
        );
        const block = await Promise.all(rows.map(featuresOf));
        images.set(await model.image.embed(block), start * model.dim);
      }
      const s2 = performance.now();
      if (key === 'fne') fneVectors = { images, captions, model, dir };
      const result = await evaluateRetrieval({ images, captions, captionImage, dim: model.dim });
      const s3 = performance.now();
      results[key] = figures(model.name, dir, model, result);

      const t2i = result.ranks.t2i;
      const s4 = performance.now();
      const order = [...t2i.keys()].sort((a, b) => (t2i[b] as number) - (t2i[a] as number) || a - b);
      const failures: RetrievalFailure[] = order
        .slice(0, worst)
        .filter((c) => (t2i[c] as number) > 1)
        .map((c) => {
          const own = captionImage[c] as number;
          const scores = scoreAll(images, captions.subarray(c * model.dim, (c + 1) * model.dim), model.dim);
          const expectedScore = scores[own] as number;
          const above = [...scores.keys()]
            .filter((i) => i !== own && (scores[i] as number) >= expectedScore)
            .sort((a, b) => (scores[b] as number) - (scores[a] as number) || a - b)
            .slice(0, aboveCount)
            .map((i) => ({
              image: rankedImages[i] as number,
              file: imageFile(i),
              score: scores[i] as number,
            }));
          const k = keptCaptions[c] as number;
          const caption = dataset.captions[k] as EvalDataset['captions'][number];
          return {
            caption: k,
            text: caption.text,
            where: caption.where,
            rank: t2i[c] as number,
            expected: { image: rankedImages[own] as number, file: imageFile(own), score: expectedScore },
            above,
          };
        });
      const s5 = performance.now();
      const correct: number[] = [];
      for (let c = 0; c < t2i.length; c++) if (t2i[c] === 1) correct.push(c);
      let layers: LayerShares | undefined;
      const explain = options.explain ?? explainLayers;
      if (explain && model.manifest.features !== 'one-layer' && correct.length > 0) {
        const pairs = await Promise.all(
          evenSample(correct, options.explainPairs ?? EXPLAIN_PAIRS).map(async (c) => ({
            image: await featuresOf(captionImage[c] as number),
            caption: captions.subarray(c * model.dim, (c + 1) * model.dim),
          })),
        );
        layers = await explain(dir, pairs);
      }
      details[key] = {
        failures,
        correctTop1: correct.length,
        ...(layers ? { layers } : {}),
        seconds: {
          text: (s1 - s0) / 1000,
          image: (s2 - s1) / 1000,
          ranking: (s3 - s2) / 1000,
          failures: (s5 - s4) / 1000,
          explain: (performance.now() - s5) / 1000,
        },
      };
    }

    if (fneVectors && options.search !== false) {
      const { images, captions, model, dir } = fneVectors;
      const setup = options.search ?? (await defaultSearchSetup(model, notes));
      if (setup) {
        const probs = await Promise.all(
          rankedImages.map((i) =>
            readProbs(features.probs, features.sha256[i] as string, dataset.images[i] as string),
          ),
        );
        const texts = keptCaptions.map((k) => (dataset.captions[k] as EvalDataset['captions'][number]).text);
        const s0 = performance.now();
        const result = await evaluateSearch(
          { images, captions, captionImage, dim: model.dim },
          texts,
          lang,
          probs,
          setup,
          model.text,
        );
        results.search = figures('search', dir, model, result);
        const correct = result.ranks.t2i.reduce((n, r) => n + (r === 1 ? 1 : 0), 0);
        const ranking = (performance.now() - s0) / 1000;
        details.search = {
          failures: [],
          correctTop1: correct,
          seconds: { text: 0, image: 0, ranking, failures: 0, explain: 0 },
        };
      }
    }

    const fne = results.fne;
    const one = results['one-layer'];
    const minus = (a: DirectionFigures, b: DirectionFigures): DirectionFigures => ({
      r1: a.r1 - b.r1,
      r5: a.r5 - b.r5,
      r10: a.r10 - b.r10,
      medr: a.medr - b.medr,
      meanr: a.meanr - b.meanr,
    });
    if (features.failed.length > 0)
      notes.push(
        `${features.failed.length} images failed to decode and are left out of every model's ranking`,
      );
    if (skippedCaptions.length > 0)
      notes.push(`${skippedCaptions.length} captions have no words and are left out`);
    if (unknownOnly.length > 0)
      notes.push(
        `${unknownOnly.length} captions are made only of words the model does not know (kept, as <unk>)`,
      );
    if (uncaptioned.length > 0)
      notes.push(`${uncaptioned.length} photos have no usable caption and are left out`);
    const t2 = performance.now();
    return {
      dataset: datasetPath,
      format: dataset.format,
      ...(dataset.split ? { split: dataset.split } : {}),
      lang,
      images: rankedImages.length,
      captions: keptCaptions.length,
      skipped: { images: features.failed, captions: skippedCaptions, uncaptioned },
      results,
      ...(fne && one
        ? {
            difference: {
              i2t: minus(fne.i2t, one.i2t),
              t2i: minus(fne.t2i, one.t2i),
              rsum: fne.rsum - one.rsum,
            },
          }
        : {}),
      notes,
      unknownOnly,
      details,
      rankedImages: Int32Array.from(rankedImages),
      rankedCaptions: Int32Array.from(keptCaptions),
      imageFiles: dataset.images,
      features: { cacheDir: features.cache.dir, computed: features.computed, reused: features.reused },
      seconds: {
        load: (t1 - t0) / 1000,
        hash: features.seconds.hash,
        cnn: features.seconds.cnn,
        total: (t2 - t0) / 1000,
      },
    };
  } finally {
    await Promise.all(opened.map((model) => model.close()));
  }
}

/**
 * Correct matches the layer split is averaged over by default. LayerExplainer costs ~160 ms of CPU per FNE
 * pair here (a [featureDim x dim] product in JavaScript), so 50 pairs keep it to seconds; on the Flickr8k
 * test split an even sample of 50 gives every block's share within 1.5 points of 200 pairs (BENCHMARKS.md).
 */
export const EXPLAIN_PAIRS = 50;

/** At most n items, evenly spaced, first included. */
function evenSample<T>(items: readonly T[], n: number): T[] {
  if (items.length <= n) return [...items];
  return Array.from({ length: n }, (_, k) => items[Math.floor((k * items.length) / n)] as T);
}

/** The mean of LayerExplainer's exact per-layer split (describe room) over the pairs. */
const explainLayers: LayerExplain = async (dir, pairs) => {
  if (pairs.length === 0) return undefined;
  const explainer = await LayerExplainer.open(dir);
  const layers = new Map<string, { block: string; sum: number }>();
  const blocks = new Map<string, number>();
  let score = 0;
  for (const { image, caption } of pairs) {
    const e = explainer.explain(image, caption);
    score += e.score;
    for (const l of e.layers) {
      const entry = layers.get(l.name) ?? { block: l.block, sum: 0 };
      entry.sum += l.contribution;
      layers.set(l.name, entry);
    }
    for (const b of e.blocks) blocks.set(b.block, (blocks.get(b.block) ?? 0) + b.contribution);
  }
  const n = pairs.length;
  return {
    pairs: n,
    score: score / n,
    layers: [...layers].map(([name, { block, sum }]) => ({ name, block, contribution: sum / n })),
    blocks: [...blocks].map(([block, sum]) => ({ block, contribution: sum / n })),
  };
};

/** One caption's score against every image (float64 sums: only for display, ranks come from the protocol). */
function scoreAll(images: Float32Array, caption: Float32Array, dim: number): Float64Array {
  const n = images.length / dim;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    const base = i * dim;
    for (let k = 0; k < dim; k++) s += (images[base + k] as number) * (caption[k] as number);
    out[i] = s;
  }
  return out;
}

/** The JSON `--json` prints: figures only, no per-caption detail. */
export function evalSummary(run: EvalRun) {
  return {
    dataset: run.dataset,
    format: run.format,
    ...(run.split ? { split: run.split } : {}),
    lang: run.lang,
    images: run.images,
    captions: run.captions,
    skipped: {
      images: run.skipped.images.map(({ file, code, reason }) => ({ file, code, reason })),
      captions: run.skipped.captions,
      uncaptioned: run.skipped.uncaptioned,
    },
    results: run.results,
    ...(run.difference ? { difference: run.difference } : {}),
    notes: run.notes,
    features: run.features,
    seconds: {
      ...run.seconds,
      models: Object.fromEntries(Object.entries(run.details).map(([key, d]) => [key, d?.seconds])),
    },
  };
}
