import { CLASS_COUNT, type ConceptLexicon } from './lexicon.ts';

interface ConceptTag {
  text: string;
  /** The classifier's probability of the class, or of all the classes under a hypernym, in [0, 1]. */
  confidence: number;
  /** Lightroom's lr:hierarchicalSubject path, top first: "animal|mammal|marsupial|koala". */
  hierarchy: string;
}

interface ConceptTagOptions {
  /** At most this many tags (default 10). */
  max?: number;
  /** Tags below this confidence are left out (default 0.1, as for the caption tags). */
  minConfidence?: number;
}

/** Classes below this probability add nothing to their hypernyms' tags but noise. */
const CLASS_FLOOR = 0.01;

/**
 * Catalogue keywords from the classifier's own output: the likely classes by name ("koala") and their WordNet
 * hypernyms ("marsupial", "mammal", "animal"), each with its probability mass; a hypernym gathers the mass of
 * every class under it, so a photo the network splits between twenty terriers is still "dog" at 0.9.
 */
export function conceptTags(
  lexicon: ConceptLexicon,
  probs: Float32Array,
  options: ConceptTagOptions = {},
): ConceptTag[] {
  if (probs.length !== CLASS_COUNT)
    throw new RangeError(`probs has ${probs.length} values, expected ${CLASS_COUNT} (no background class)`);
  const max = options.max ?? 10;
  const min = options.minConfidence ?? 0.1;
  // Class names first, so a long hypernym chain never crowds out what the photo shows.
  const classes = new Map<string, ConceptTag>();
  const hypernyms = new Map<string, ConceptTag>();
  for (let i = 0; i < CLASS_COUNT; i++) {
    if ((probs[i] as number) < CLASS_FLOOR) continue;
    for (const link of lexicon.classTags(i)) {
      let mass = 0;
      for (const c of link.classes) mass += probs[c] as number;
      const confidence = Math.min(1, mass);
      if (confidence < min) continue;
      const into = link.classes.length === 1 && link.classes[0] === i ? classes : hypernyms;
      if (!classes.has(link.text) && !into.has(link.text))
        into.set(link.text, { text: link.text, confidence, hierarchy: link.hierarchy });
    }
  }
  const byConfidence = (a: ConceptTag, b: ConceptTag) =>
    b.confidence - a.confidence || (a.text < b.text ? -1 : 1);
  return [...[...classes.values()].sort(byConfidence), ...[...hypernyms.values()].sort(byConfidence)]
    .filter((t, k, all) => all.findIndex((u) => u.text === t.text) === k)
    .slice(0, max)
    .sort(byConfidence);
}
