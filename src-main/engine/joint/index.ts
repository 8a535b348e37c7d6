export {
  FEATURE_KINDS,
  type FeatureKind,
  FIXTURES_FILE,
  IMAGE_PROJECTION_FILE,
  type JointManifest,
  MANIFEST_FILE,
  readJointManifest,
  TEXT_ENCODER_FILE,
  VOCAB_FILE,
} from './manifest.ts';
export { JointModel, type JointModelOptions, jointModelsDir, listJointModels } from './model.ts';
export {
  columnSpans,
  type ImageInput,
  ImageProjection,
  type ImageProjectionOptions,
  type LayerColumns,
} from './projection.ts';
