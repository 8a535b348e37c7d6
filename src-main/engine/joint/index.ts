export {
  type FeatureKind,
  FIXTURES_FILE,
  IMAGE_PROJECTION_FILE,
  type JointManifest,
  MANIFEST_FILE,
  manifestSha256,
  readJointManifest,
  readVerified,
  TEXT_ENCODER_FILE,
  VOCAB_FILE,
} from '../modelfiles/index.ts';
export {
  JointModel,
  jointModelsDir,
  listJointModels,
  listTextEncoders,
} from './model.ts';
export {
  columnSpans,
  type ImageInput,
  ImageProjection,
  type ImageProjectionOptions,
  type LayerColumns,
} from './projection.ts';
