import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { ArgumentError, ModelError } from '../errors.ts';
import { manifestSha256 } from '../modelfiles/index.ts';
import { modelsDir } from '../paths.ts';

/** Where `npm run calibrate` writes the relevance cutoffs of the shipped joint models. */
export const SEARCH_CALIBRATION_FILE = join(modelsDir, 'search.json');
export const SEARCH_CALIBRATION_FORMAT = 'sagasu-search-1';

const entry = z.looseObject({
  model: z.string().min(1),
  /** sha256 of the model's manifest.json: a retrained model of the same name is another model. */
  manifestSha256: z.string().regex(/^[0-9a-f]{64}$/),
  cutoff: z.number().min(-1).max(1),
  how: z.string(),
  /** Share of matching (sentence, image) pairs of the calibration split that score above the cutoff. */
  matchingAbove: z.number().min(0).max(1),
  /** Share of non-matching pairs above it. */
  nonMatchingAbove: z.number().min(0).max(1),
  /** Search's fused score (joint cosine + concept + keyword): its weights and its own cutoff. */
  fusion: z
    .looseObject({
      weights: z.object({
        concept: z.number().min(0),
        unknown: z.number().min(0),
        keyword: z.number().min(0),
        zCap: z.number().positive(),
        floor: z.number().positive().max(1).optional(),
      }),
      cutoff: z.number(),
      how: z.string(),
    })
    .optional(),
});
const fileSchema = z.object({ format: z.literal(SEARCH_CALIBRATION_FORMAT), models: z.array(entry) });

export type SearchCalibration = z.infer<typeof entry>;

export interface LoadCalibrationOptions {
  /** Default: models/search.json. */
  file?: string;
  /** The model's directory: its manifest must be the one calibrated, else there is no calibration for it. */
  modelDir?: string;
}

/**
 * The calibrated relevance cutoff of a joint model, or null when there is none for it (never calibrated, or
 * calibrated on a model of the same name that has since been retrained): search then has no cutoff, which
 * is safe, whereas another model's cutoff would hide or flood results. A damaged file is a ModelError.
 */
export async function loadSearchCalibration(
  modelName: string,
  options: LoadCalibrationOptions = {},
): Promise<SearchCalibration | null> {
  const file = options.file ?? SEARCH_CALIBRATION_FILE;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ModelError('missing', file, `cannot be read (${(cause as Error).message})`, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new ModelError(
      'invalid-model',
      file,
      `not JSON: ${(cause as Error).message}; run \`npm run calibrate\``,
      {
        cause,
      },
    );
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ModelError(
      'invalid-model',
      file,
      `not a search calibration: ${issue?.path.join('.') || '(root)'}: ${issue?.message}; run \`npm run calibrate\``,
    );
  }
  const found = parsed.data.models.find((m) => m.model === modelName);
  if (!found) return null;
  if (options.modelDir && manifestSha256(options.modelDir) !== found.manifestSha256) return null;
  return found;
}

export interface PairScores {
  /** Scores of the pairs whose sentence describes the image. */
  matching: Float32Array;
  /** Scores of every other pair. */
  nonMatching: Float32Array;
}

/**
 * Every (sentence, image) score of a captioned split, as the search computes them (dot products of unit
 * vectors): images [nImages, dim] and sentences [nSentences, dim] row-major, captionImage[s] the row of the
 * image sentence s describes.
 */
export function pairScores(
  images: Float32Array,
  sentences: Float32Array,
  captionImage: ArrayLike<number>,
  dim: number,
  /** Changes sentence s's row of scores before it is split (the fused score's concept term). */
  adjust?: (s: number, m: 1, row: Float32Array) => void,
): PairScores {
  const nImages = images.length / dim;
  const nSentences = sentences.length / dim;
  if (!Number.isInteger(nImages) || !Number.isInteger(nSentences) || captionImage.length !== nSentences)
    throw new ArgumentError(
      'pairs',
      `shapes disagree: ${nImages} images, ${nSentences} sentences of dim ${dim}`,
    );
  for (let s = 0; s < nSentences; s++) {
    const i = captionImage[s] as number;
    if (!Number.isInteger(i) || i < 0 || i >= nImages)
      throw new ArgumentError('pairs', `sentence ${s} names image ${i}, outside 0..${nImages - 1}`);
  }
  const matching = new Float32Array(nSentences);
  const nonMatching = new Float32Array(nImages * nSentences - nSentences);
  let m = 0;
  let n = 0;
  const row = new Float32Array(nImages);
  for (let s = 0; s < nSentences; s++) {
    const own = captionImage[s] as number;
    const sBase = s * dim;
    for (let i = 0, iBase = 0; i < nImages; i++, iBase += dim) {
      let acc = 0;
      for (let j = 0; j < dim; j++) acc += (images[iBase + j] as number) * (sentences[sBase + j] as number);
      row[i] = acc;
    }
    adjust?.(s, 1, row);
    for (let i = 0; i < nImages; i++) {
      if (i === own) matching[m++] = row[i] as number;
      else nonMatching[n++] = row[i] as number;
    }
  }
  return { matching, nonMatching };
}

function shareAbove(sorted: Float32Array, cutoff: number): number {
  // First index whose value is > cutoff, by binary search on the ascending array.
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] as number) > cutoff) hi = mid;
    else lo = mid + 1;
  }
  return (sorted.length - lo) / sorted.length;
}

export interface CutoffChoice {
  cutoff: number;
  matchingAbove: number;
  nonMatchingAbove: number;
}

/**
 * The score that a share `quantile` of non-matching pairs stays at or below (0.99: 1 % of unrelated photos
 * pass), and what share of each kind of pair passes it.
 */
export function chooseCutoff(scores: PairScores, quantile = 0.99): CutoffChoice {
  if (!(quantile > 0 && quantile < 1))
    throw new ArgumentError('quantile', `expected (0, 1), got ${quantile}`);
  if (scores.matching.length === 0 || scores.nonMatching.length === 0)
    throw new ArgumentError('pairs', 'need both matching and non-matching pairs');
  const non = Float32Array.from(scores.nonMatching).sort();
  const match = Float32Array.from(scores.matching).sort();
  const cutoff = non[Math.min(non.length - 1, Math.ceil(quantile * non.length) - 1)] as number;
  return { cutoff, matchingAbove: shareAbove(match, cutoff), nonMatchingAbove: shareAbove(non, cutoff) };
}
