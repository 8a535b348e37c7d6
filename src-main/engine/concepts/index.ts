/**
 * The concepts room: the classifier's 1,000 ImageNet classes reached through WordNet 3.0 (and EDICT for
 * Japanese): which classes a query names, how much a photo's class probabilities show them, and the class
 * names and hypernyms that become catalogue tags.
 */
export {
  CLASS_COUNT,
  CONCEPT_LEXICON_FILE,
  ConceptError,
  ConceptLexicon,
  type ConceptQuery,
  conceptScore,
  conceptTerms,
  PROBABILITY_FLOOR,
} from './lexicon.ts';
export { conceptTags } from './tags.ts';
