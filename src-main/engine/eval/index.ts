export { type CaptionedImages, evaluateJointModel, type JointEvaluation } from './evaluate.ts';
export { defaultPreparedDir, type EvalSplit, loadPreparedSplit, type PreparedSplit } from './prepared.ts';
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
