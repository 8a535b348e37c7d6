import quickselect from 'quickselect';
import {
  type ClassRows,
  ClassTable,
  decodeTopClasses,
  encodeTopClasses,
  TOP_CLASSES,
  topClasses,
} from './classes.ts';

/** What the ranking needs of a query's concepts (the concepts room's ConceptQuery has this shape). */
export interface ConceptTerms {
  matches: ReadonlyArray<{ term: string; classes: readonly number[]; weight: number }>;
}

/** Anything that turns a sentence into concepts (ConceptLexicon). */
export interface ConceptSource {
  query(sentence: string, lang: 'en' | 'ja'): Promise<ConceptTerms>;
}

/** The concepts room's floor (PROBABILITY_FLOOR): a class outside a photo's stored top classes counts as 0. */
const MASS_FLOOR = 1e-3;

/**
 * Each photo's concept score for a query, from the stored entries of the classes it names: conceptScore's formula
 * (per term the log of its classes' probability mass, senses mixed by weight, averaged over the terms) on
 * probabilities that are 0 outside the stored classes. Dense, that is 1000 values a photo; this reads k.
 * Null when no concept reaches an ImageNet class: the query has nothing to add.
 */
export function conceptScores(terms: ConceptTerms, rows: ClassRows, floor = MASS_FLOOR): Float32Array | null {
  // The first 32 senses, as calibration scored them.
  const matches = terms.matches.filter((m) => m.classes.length > 0 && m.weight > 0).slice(0, 32);
  if (matches.length === 0) return null;
  const termNames = [...new Set(matches.map((m) => m.term))];
  const nTerms = termNames.length;
  const termWeight = new Float64Array(nTerms);
  // Per class, the terms naming it and their senses' weight: an entry is then one multiply-add per term
  // that names its class (most classes belong to one term of the query).
  const classTerms = new Map<number, Map<number, number>>();
  for (const m of matches) {
    const t = termNames.indexOf(m.term);
    termWeight[t] = (termWeight[t] as number) + m.weight;
    for (const c of new Set(m.classes)) {
      const terms = classTerms.get(c) ?? new Map<number, number>();
      terms.set(t, (terms.get(t) ?? 0) + m.weight);
      classTerms.set(c, terms);
    }
  }
  const totalWeight = termWeight.reduce((a, b) => a + b, 0);
  const logFloor = Math.log(floor);
  const { size } = rows;
  const { start, rows: rowOf, probs } = rows.byClass();
  // Term-major, so a class named by one term (most are) is one tight scatter over its entries.
  const mass = new Float64Array(nTerms * size);
  for (const [c, terms] of classTerms) {
    const end = start[c + 1] as number;
    for (const [t, w] of terms) {
      const base = t * size;
      for (let i = start[c] as number; i < end; i++) {
        const at = base + (rowOf[i] as number);
        mass[at] = (mass[at] as number) + w * (probs[i] as number);
      }
    }
  }
  // A photo holding none of the classes has every term at the floor; most photos are such.
  const out = new Float32Array(size).fill(logFloor);
  for (let row = 0; row < size; row++) {
    let any = false;
    for (let t = 0; t < nTerms && !any; t++) any = (mass[t * size + row] as number) > 0;
    if (!any) continue;
    let s = 0;
    for (let t = 0; t < nTerms; t++) {
      const w = termWeight[t] as number;
      const share = (mass[t * size + row] as number) / w;
      s += w * (share > floor ? Math.log(Math.min(1, share)) : logFloor);
    }
    out[row] = s / totalWeight;
  }
  return out;
}

/**
 * Scores -> z-values across the photos (in place), capped at ±cap. Per query, so a caption with concepts and
 * one without stay comparable (annotation ranks captions against each other), and a library's photos all
 * lacking a concept (σ = 0) add nothing.
 */
export function zNormalize(
  scores: Float32Array,
  cap: number,
  pad?: { to: number; value: number },
): Float32Array {
  const n = scores.length;
  if (n === 0) return scores;
  // Padding counts `to - n` more photos scoring `value` into the mean and the spread.
  const extra = pad ? Math.max(0, pad.to - n) : 0;
  const fill = pad?.value ?? 0;
  let mean = extra * fill;
  for (const s of scores) mean += s;
  mean /= n + extra;
  let variance = extra * (fill - mean) ** 2;
  for (const s of scores) variance += (s - mean) ** 2;
  const std = Math.sqrt(variance / (n + extra));
  if (!(std > 1e-9)) return scores.fill(0);
  for (let i = 0; i < n; i++) {
    const z = ((scores[i] as number) - mean) / std;
    scores[i] = Math.min(cap, Math.max(-cap, z));
  }
  return scores;
}

/**
 * The fit saw libraries of 154 and 1,000 photos. A photo alone in showing a concept has a z of at most
 * √(n − 1), so in a library of 8 the koala photo would get a third of the lift it gets in the demo library;
 * a smaller library is scored as if it held this many photos, the others lacking the concept.
 */
const Z_POPULATION = 150;

/** A query's concept scores (conceptScores) -> the z-values the fused score adds (in place). */
export function conceptZ(scores: Float32Array, w: FusionWeights): Float32Array {
  return zNormalize(scores, w.zCap, { to: Z_POPULATION, value: Math.log(w.floor ?? MASS_FLOOR) });
}

/**
 * The rows of the `k` highest positive values (ties at the threshold included), in row order: a
 * selection (not a sort) of the values finds the threshold: a sort costs 5 ms at 100k photos, a selection 1.
 */
export function topRows(values: Float32Array, k: number, allow?: (row: number) => boolean): number[] {
  const n = values.length;
  const copy = values.slice();
  const rank = Math.max(0, n - k);
  if (n > 0) quickselect(copy as unknown as number[], rank);
  const threshold = Math.max(1e-6, copy[rank] ?? 0);
  const rows: number[] = [];
  for (let row = 0; row < n; row++)
    if ((values[row] as number) >= threshold && (!allow || allow(row))) rows.push(row);
  return rows;
}

/** The weights of the fused score (models/search.json, fitted by `npm run calibrate`). */
export interface FusionWeights {
  /** Per unit of the concept score's z-value. */
  concept: number;
  /**
   * More per unit of z for each share of the query's concepts the sentence encoder does not know: "a
   * lighthouse" means nothing to a GRU that never saw the word, so there the classifier has to carry it.
   */
  unknown: number;
  /** Added when the query's words name the photo's file, folder or a tag. */
  keyword: number;
  /** Bound on |z|, so one photo's outlying probability cannot outweigh the joint score entirely. */
  zCap: number;
  /**
   * The least concept mass that counts (default MASS_FLOOR): below it a photo is as far from the concept as
   * one without it, so a dog breed at 0.5 % in a memorial's top classes does not make it "a dog" by z.
   */
  floor?: number;
}

/**
 * The words of a sentence its encoder never learnt: those it reads as <unk> and those it reads through a
 * stand-in (a neighbour in word-vector space, a guess): for both, the classifier knows more than the GRU.
 */
export function unseenWords(reading: {
  unknown: readonly string[];
  substituted: readonly { word: string }[];
}): Set<string> {
  return new Set([...reading.unknown, ...reading.substituted.map((s) => s.word)]);
}

/**
 * The share (by weight) of a query's concept terms with a word unknown to the sentence encoder (`unknown`:
 * unseenWords of the sentence's analysis): "giant panda" read as "giant <unk>" is no panda to the GRU.
 * Counting a term only when every word was unknown left "a giant panda" and "a red panda" to the joint
 * score; measured in docs/RESULTS.md.
 */
export function unknownShare(terms: ConceptTerms, unknown: ReadonlySet<string>): number {
  const weightOf = new Map<string, number>();
  for (const m of terms.matches)
    if (m.classes.length > 0) weightOf.set(m.term, (weightOf.get(m.term) ?? 0) + m.weight);
  let all = 0;
  let unseen = 0;
  for (const [term, w] of weightOf) {
    all += w;
    const words = term.toLocaleLowerCase().split(/\s+/).filter(Boolean);
    if (words.some((word) => unknown.has(word))) unseen += w;
  }
  return all > 0 ? unseen / all : 0;
}

/** The concept term's weight for a query: λ + λ_unknown · (share of its concepts the encoder does not know). */
export function conceptWeight(w: FusionWeights, unknownConcepts: number): number {
  return w.concept + w.unknown * unknownConcepts;
}

/** Search's one score: joint cosine + weighted concept z + keyword. */
export function fusedScore(
  cosine: number,
  conceptZ: number,
  keyword: boolean,
  w: FusionWeights,
  unknownConcepts = 0,
): number {
  return cosine + conceptWeight(w, unknownConcepts) * conceptZ + (keyword ? w.keyword : 0);
}

/**
 * The table search ranks with, built from full probabilities the way the catalog stores them (top k, 8-bit):
 * what eval and calibration use, so their figures are the app's. `stored: false` keeps exact float probs.
 */
export function classTableOf(
  probs: readonly Float32Array[],
  options: { k?: number; stored?: boolean } = {},
): ClassTable {
  const k = options.k ?? TOP_CLASSES;
  const table = new ClassTable(k, Math.max(1, probs.length));
  for (const [i, p] of probs.entries()) {
    const top = topClasses(p, k);
    table.set(i, options.stored === false ? top : decodeTopClasses(encodeTopClasses(top)));
  }
  return table;
}
