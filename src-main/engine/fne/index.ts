export {
  type ExtractOptions,
  type ExtractorOptions,
  type ExtractResult,
  FneExtractor,
  type ImageFeatures,
} from './extractor.ts';
export {
  type FneStats,
  type FneStatsMeta,
  loadStats,
  StatsAccumulator,
  saveStats,
  statsBinPath,
  statsMetaPath,
  statsPaths,
} from './stats.ts';
export {
  DEFAULT_THRESHOLDS,
  isPaperThresholds,
  standardize,
  type Thresholds,
  ternarize,
  ternaryShares,
} from './ternary.ts';
