/**
 * The describe room: what an image's joint vector says about it, with no catalog and no SQL. Why a photo
 * matches a sentence (the score split by CNN layer), auto-captions from a caption bank, tags, the calibrated
 * relevance cutoff, XMP sidecars and exports.
 */
export {
  CaptionBank,
  CaptionBankError,
  type CaptionBankOptions,
  DEFAULT_CAPTION_BANK,
  type Neighbour,
  type ScoredCaption,
} from './bank.ts';
export {
  type CutoffChoice,
  chooseCutoff,
  type LoadCalibrationOptions,
  loadSearchCalibration,
  type PairScores,
  pairScores,
  SEARCH_CALIBRATION_FILE,
  type SearchCalibration,
} from './calibration.ts';
export { blockOf, LayerExplainer, type LayerExplainerOptions } from './explain.ts';
export { type ExportFormat, type ExportRow, exportRows } from './export.ts';
export { DEFAULT_TAG_OPTIONS, type ScoredTag, type TagOptions, tagsFor } from './tags.ts';
export { captionKey, cleanCaption, contentLemmas, isStopWord, lemma, words } from './words.ts';
export {
  readXmpSidecar,
  sidecarPath,
  writeXmpSidecar,
  type XmpContent,
  XmpError,
  type XmpErrorCode,
  type XmpNaming,
  type XmpSidecar,
  type XmpWriteOptions,
  XmpWriter,
} from './xmp.ts';
