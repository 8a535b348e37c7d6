export {
  type CaptionLang,
  type DatasetFormat,
  DEMO_ATTRIBUTION,
  detectLang,
  type EvalCaption,
  type EvalDataset,
  type LoadDatasetOptions,
  loadEvalDataset,
} from './datasets.ts';
export { type CaptionedImages, evaluateJointModel, type JointEvaluation } from './evaluate.ts';
export {
  defaultPreparedDir,
  type EvalSplit,
  loadPreparedProbs,
  loadPreparedSplit,
  type PreparedSplit,
} from './prepared.ts';
export {
  evaluateRetrieval,
  type RankMetrics,
  type RetrievalInput,
  type RetrievalMetrics,
  type RetrievalRanks,
  type RetrievalResult,
  rankMetrics,
  rankRetrieval,
} from './protocol.ts';
export {
  figureRows,
  figureTable,
  type ReportFiles,
  type ReportOptions,
  textTable,
  writeEvalReport,
} from './report.ts';
export {
  type DirectionFigures,
  EMBEDDING_CHOICES,
  type EmbeddingChoice,
  type EvalLang,
  type EvalRun,
  EXPLAIN_PAIRS,
  evalSummary,
  type LayerExplain,
  type LayerShares,
  type ModelDetails,
  type ModelFigures,
  type RetrievalFailure,
  type RunEvalOptions,
  runEval,
  type SkippedCaption,
} from './run.ts';
export {
  type CaptionConcepts,
  captionConcepts,
  conceptAdjust,
  defaultSearchSetup,
  evaluateSearch,
  type SearchSetup,
} from './search.ts';
export {
  type FeatureOptions,
  type ImageFailure,
  type ImageFeatureSet,
  imageFeatures,
  readFeatures,
  readProbs,
} from './vectors.ts';
