export {
  JointModel,
  jointModelsDir,
  listJointModels,
  listTextEncoders,
} from './model.ts';
export { DEFAULT_MODEL_SET, findModelSet, listModelSets, type ModelSet } from './model-set.ts';
export {
  columnSpans,
  type ImageInput,
  ImageProjection,
  type ImageProjectionOptions,
  type LayerColumns,
} from './projection.ts';
