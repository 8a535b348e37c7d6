export {
  ClassTable,
  decodeTopClasses,
  encodeTopClasses,
  TOP_CLASSES,
  type TopClasses,
  topClasses,
} from './classes.ts';
export {
  type ClassRows,
  type ConceptSource,
  type ConceptTerms,
  checkWeights,
  classTableOf,
  conceptScores,
  conceptWeight,
  type FusionWeights,
  fusedScore,
  MASS_FLOOR,
  topRows,
  unknownShare,
  unseenWords,
  zNormalize,
} from './score.ts';
