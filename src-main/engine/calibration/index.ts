/**
 * The calibration room: the relevance cutoff of search, fitted on held-out captions (models/search.json), and
 * the fused score's weights that go with it.
 */
export {
  type CutoffChoice,
  chooseCutoff,
  type LoadCalibrationOptions,
  loadSearchCalibration,
  type PairScores,
  pairScores,
  SEARCH_CALIBRATION_FILE,
  type SearchCalibration,
} from './search.ts';
