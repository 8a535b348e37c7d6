/**
 * The describe room: what an image's joint vector says about it, with no catalog and no SQL. Why a photo
 * matches a sentence (the score split by CNN layer), auto-captions from a caption bank and tags.
 */
export {
  CaptionBank,
  CaptionBankError,
  type CaptionBankOptions,
  DEFAULT_CAPTION_BANK,
  type Neighbour,
  type ScoredCaption,
} from './bank.ts';
export { blockOf, LayerExplainer, type LayerExplainerOptions } from './explain.ts';
export { type ScoredTag, type TagOptions, tagsFor } from './tags.ts';
export { captionKey, cleanCaption, contentLemmas, isStopWord, lemma, words } from './words.ts';
