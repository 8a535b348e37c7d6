import type { CaptionBank } from './bank.ts';
import { contentLemmas } from './words.ts';

export interface TagOptions {
  /** Nearest captions that vote (default 40). */
  neighbours?: number;
  /**
   * Softmax temperature on the neighbours' cosine scores (default 0.1, chosen with neighbours = 40 on the
   * validation images against a train-only bank): lower lets the closest captions dominate, higher makes
   * every neighbour count alike.
   */
  temperature?: number;
  /** At most this many tags (default 10). */
  max?: number;
  /** Tags below this confidence are left out (default 0.1). */
  minConfidence?: number;
}

export interface ScoredTag {
  text: string;
  /** The similarity-weighted share of the nearest captions that use the word, in [0, 1]. */
  confidence: number;
}

const DEFAULT_TAG_OPTIONS: Required<TagOptions> = {
  neighbours: 40,
  temperature: 0.1,
  max: 10,
  minConfidence: 0.1,
};

/**
 * Keywords for an image: its nearest captions in the bank vote for their content words (stop words out,
 * lemmas in, each word once per caption), each caption with weight softmax(score / temperature). A tag's
 * confidence is the weighted share of captions that say it, so "dog" at 0.9 means nearly every caption
 * close to this photo mentions a dog.
 */
export function tagsFor(bank: CaptionBank, vec: Float32Array, options: TagOptions = {}): ScoredTag[] {
  const o = { ...DEFAULT_TAG_OPTIONS, ...options };
  const near = bank.neighbours(vec, o.neighbours);
  if (near.length === 0) return [];
  const top = near[0]?.score ?? 0;
  const known = bank.vocabulary;
  const votes = new Map<string, number>();
  let total = 0;
  for (const { text, score } of near) {
    const w = Math.exp((score - top) / o.temperature);
    total += w;
    for (const l of contentLemmas(text, known)) votes.set(l, (votes.get(l) ?? 0) + w);
  }
  return [...votes]
    .map(([text, v]) => ({ text, confidence: Math.min(1, v / total) }))
    .filter((t) => t.confidence >= o.minConfidence)
    .sort((a, b) => b.confidence - a.confidence || (a.text < b.text ? -1 : 1))
    .slice(0, o.max);
}
