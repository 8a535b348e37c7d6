/**
 * Reading model files, below joint and text: a model directory's manifest and the sha256 check of every file
 * it lists, the ONNX session's declared inputs and outputs, and the projection weights read out of the graph.
 */
export {
  type FeatureKind,
  FIXTURES_FILE,
  IMAGE_PROJECTION_FILE,
  type JointManifest,
  jointBackbone,
  jointThresholds,
  MANIFEST_FILE,
  manifestSha256,
  readJointManifest,
  readVerified,
  TEXT_ENCODER_FILE,
  VOCAB_FILE,
} from './manifest.ts';
export { floatOutput, requireIo } from './onnx.ts';
export { type ProjectionWeights, readProjectionWeights } from './weights.ts';
