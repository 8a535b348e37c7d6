import { loadSearchCalibration } from '../calibration/index.ts';
import { ConceptLexicon } from '../concepts/index.ts';
import { SagasuError } from '../errors.ts';
import {
  type ClassTable,
  type ConceptSource,
  type ConceptTerms,
  classTableOf,
  conceptScores,
  conceptWeight,
  conceptZ,
  type FusionWeights,
  unknownShare,
  unseenWords,
} from '../fusion/index.ts';
import type { JointModel } from '../joint/index.ts';
import { evaluateRetrieval, type RetrievalInput, type RetrievalResult } from './protocol.ts';

/** What the `search` row needs beyond the FNE model: the concept lexicon and the fitted fusion weights. */
export interface SearchSetup {
  concepts: ConceptSource;
  weights: FusionWeights;
}

/**
 * The protocol's `adjust` for the fused score: adds weight · z(concept score) of each caption against every
 * image (ClassTable rows in image order). z is taken across the ranked images, as search takes it across the
 * library's photos. Computed block by block, never the captions × images matrix.
 */
export function conceptAdjust(
  queries: readonly CaptionConcepts[],
  table: ClassTable,
  weights: FusionWeights,
): (c0: number, m: number, scores: Float32Array) => void {
  const rows = table.view();
  return (c0, m, scores) => {
    for (let r = 0; r < m; r++) {
      const q = queries[c0 + r] as CaptionConcepts;
      const s = conceptScores(q.terms, rows, weights.floor);
      if (!s) continue;
      const z = conceptZ(s, weights);
      const lambda = conceptWeight(weights, q.unknownShare);
      const base = r * rows.size;
      for (let i = 0; i < rows.size; i++)
        scores[base + i] = (scores[base + i] as number) + lambda * (z[i] as number);
    }
  };
}

/** A caption's concepts and the share of them its sentence encoder does not know. */
export interface CaptionConcepts {
  terms: ConceptTerms;
  unknownShare: number;
}

/** Each caption's concepts, each distinct text looked up once. */
export async function captionConcepts(
  texts: readonly string[],
  lang: 'en' | 'ja',
  source: ConceptSource,
  encoder: { analyze(text: string): { unknown: string[]; substituted: { word: string }[] } },
): Promise<CaptionConcepts[]> {
  const distinct = new Map<string, CaptionConcepts>();
  for (const text of texts) {
    if (distinct.has(text)) continue;
    const terms = await source.query(text, lang);
    distinct.set(text, { terms, unknownShare: unknownShare(terms, unseenWords(encoder.analyze(text))) });
  }
  return texts.map((t) => distinct.get(t) as CaptionConcepts);
}

/**
 * The app's ranking on the paper's protocol: the joint model's vectors, plus the concept term from each
 * image's class probabilities stored as the catalog stores them. (File names carry no words in evaluation
 * sets, so the keyword term is zero here.)
 */
export async function evaluateSearch(
  input: RetrievalInput,
  texts: readonly string[],
  lang: 'en' | 'ja',
  probs: readonly Float32Array[],
  setup: SearchSetup,
  encoder: { analyze(text: string): { unknown: string[]; substituted: { word: string }[] } },
): Promise<RetrievalResult> {
  const queries = await captionConcepts(texts, lang, setup.concepts, encoder);
  return evaluateRetrieval(input, { adjust: conceptAdjust(queries, classTableOf(probs), setup.weights) });
}

/** The lexicon and the FNE model's fitted weights, or undefined (with a note saying why) when either is missing. */
export async function defaultSearchSetup(
  model: JointModel,
  notes: string[],
): Promise<SearchSetup | undefined> {
  const calibration = await loadSearchCalibration(model.name, { modelDir: model.dir });
  if (!calibration?.fusion) {
    notes.push(
      'no search row: models/search.json has no fusion weights for this FNE model (npm run calibrate)',
    );
    return undefined;
  }
  try {
    return { concepts: await ConceptLexicon.load(), weights: calibration.fusion.weights };
  } catch (error) {
    if (!(error instanceof SagasuError)) throw error;
    notes.push(`no search row: ${error.message}`);
    return undefined;
  }
}
