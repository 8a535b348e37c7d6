/**
 * The describe room: what an image's joint vector says about it, with no catalog and no SQL. Why a photo
 * matches a sentence (the score split by CNN layer), auto-captions from a caption bank, tags, the calibrated
 * relevance cutoff, XMP sidecars and exports.
 */
export { blockOf, LayerExplainer, type LayerExplainerOptions } from './explain.ts';
export { type ProjectionWeights, readProjectionWeights } from './weights.ts';
