export {
  ClassTable,
  decodeTopClasses,
  encodeTopClasses,
  TOP_CLASSES,
  topClasses,
} from './classes.ts';
export {
  type ConceptSource,
  type ConceptTerms,
  classTableOf,
  conceptScores,
  conceptWeight,
  conceptZ,
  type FusionWeights,
  fusedScore,
  topRows,
  unknownShare,
  unseenWords,
  zNormalize,
} from './score.ts';
