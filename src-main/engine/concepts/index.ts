/**
 * The concepts room: the classifier's 1,000 ImageNet classes reached through WordNet 3.0 (and EDICT for
 * Japanese): which classes a query names, how much a photo's class probabilities show them, and the class
 * names and hypernyms that become catalogue tags.
 */
export {
  CLASS_COUNT,
  type ClassNames,
  CONCEPT_LEXICON_FILE,
  ConceptError,
  ConceptLexicon,
  type ConceptMatch,
  type ConceptQuery,
  type ConceptTerm,
  conceptScore,
  conceptTerms,
  PROBABILITY_FLOOR,
} from './lexicon.ts';
export { type ConceptTag, type ConceptTagOptions, conceptTags } from './tags.ts';
