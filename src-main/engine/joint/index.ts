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
