import { ClassTable, decodeTopClasses, encodeTopClasses, TOP_CLASSES, topClasses } from './classes.ts';

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

/** Rows of top classes, as ClassTable.view() gives them. */
interface ClassRows {
  classes: Uint16Array;
  probs: Float32Array;
  size: number;
  k: number;
}

/**
 * Each photo's concept score for a query, in one pass over the stored top classes: conceptScore's formula
 * (per term the log of its classes' probability mass, senses mixed by weight, averaged over the terms) on
 * probabilities that are 0 outside the stored classes. Dense, that is 1000 values a photo; this reads k.
 * Null when no concept reaches an ImageNet class: the query has nothing to add.
 */
export function conceptScores(terms: ConceptTerms, rows: ClassRows, floor = MASS_FLOOR): Float32Array | null {
  const matches = terms.matches.filter((m) => m.classes.length > 0 && m.weight > 0).slice(0, 32);
  if (matches.length === 0) return null;
  const termNames = [...new Set(matches.map((m) => m.term))];
  const termOf = Int32Array.from(matches, (m) => termNames.indexOf(m.term));
  const termWeight = new Float64Array(termNames.length);
  for (const [j, m] of matches.entries()) {
    const t = termOf[j] as number;
    termWeight[t] = (termWeight[t] as number) + m.weight;
  }
  const totalWeight = termWeight.reduce((a, b) => a + b, 0);
  // One bit per match on each class, so a photo's k entries are read once whatever the query holds.
  const member = new Uint32Array(1000);
  for (const [j, m] of matches.entries())
    for (const c of m.classes) member[c] = ((member[c] as number) | (1 << j)) >>> 0;
  const matchWeight = Float64Array.from(matches, (m) => m.weight);
  const mass = new Float64Array(termNames.length);
  const out = new Float32Array(rows.size);
  for (let row = 0; row < rows.size; row++) {
    mass.fill(0);
    const base = row * rows.k;
    for (let e = 0; e < rows.k; e++) {
      let bits = member[rows.classes[base + e] as number] as number;
      if (bits === 0) continue;
      const p = rows.probs[base + e] as number;
      for (let j = 0; bits !== 0; j++, bits >>>= 1)
        if (bits & 1) {
          const t = termOf[j] as number;
          mass[t] = (mass[t] as number) + (matchWeight[j] as number) * p;
        }
    }
    let s = 0;
    for (let t = 0; t < termNames.length; t++) {
      const w = termWeight[t] as number;
      s += w * Math.log(Math.max(floor, Math.min(1, (mass[t] as number) / w)));
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
export function zNormalize(scores: Float32Array, cap: number): Float32Array {
  const n = scores.length;
  if (n === 0) return scores;
  let mean = 0;
  for (const s of scores) mean += s;
  mean /= n;
  let variance = 0;
  for (const s of scores) variance += (s - mean) ** 2;
  const std = Math.sqrt(variance / n);
  if (!(std > 1e-9)) return scores.fill(0);
  for (let i = 0; i < n; i++) {
    const z = ((scores[i] as number) - mean) / std;
    scores[i] = Math.min(cap, Math.max(-cap, z));
  }
  return scores;
}

/**
 * The rows of the `k` highest positive values (ties at the threshold included), in row order: a native sort
 * of the values finds the threshold, since a comparator sort of row indices costs tens of ms at 100k photos.
 */
export function topRows(values: Float32Array, k: number, allow?: (row: number) => boolean): number[] {
  const sorted = values.slice().sort();
  const threshold = Math.max(1e-6, sorted[Math.max(0, sorted.length - k)] ?? 0);
  const rows: number[] = [];
  for (let row = 0; row < values.length; row++)
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
 * The share (by weight) of a query's concept terms whose every word is unknown to the sentence encoder
 * (`unknown`: unseenWords of the sentence's analysis).
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
    if (words.length > 0 && words.every((word) => unknown.has(word))) unseen += w;
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
