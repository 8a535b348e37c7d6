export {
  CNN_BACKBONES,
  type CnnBackbone,
  type CnnManifest,
  cnnModelPath,
  convertResnet50,
  imagenetClassOffset,
  labelsPath,
  prepareCnn,
  prepareResnet50,
  verifiedCnn,
} from './build.ts';
export { CNN_MODES, type CnnMode, convertTfliteToOnnx, type LayerInfo } from './converter.ts';
export { IMAGENET_CLASSES, imagenetClassProbs, loadLabels } from './labels.ts';
export { DataType, OnnxGraphBuilder, onnxModelType } from './onnx-writer.ts';
export { chooseProviders, type OnnxOptions, openSession, type ProviderName } from './providers.ts';
export { CnnSession } from './session.ts';
export { RESNET50_PACKAGE, sha256File, UPSTREAM_FILES } from './source.ts';
export { readTfjsLayersModel } from './tfjs.ts';
export { readTflite } from './tflite.ts';

import type { CnnBackbone } from './build.ts';
import type { CnnMode } from './converter.ts';
/**
 * float, chosen by measurement (docs/BENCHMARKS.md). With the Full-Network outputs, float runs ~1.5x faster
 * on CPU: onnxruntime executes the qdq graph's convolutions in an int8 NHWC layout, so each of the 52 pooled
 * branches first dequantizes and transposes a whole activation map (43 % of qdq's time in a profile); float
 * pools inside its own blocked layout. Float is also what GPU execution providers run natively. The two modes
 * are NOT interchangeable (their ternary FNEs agree on ~97 % of entries): statistics and training use this one.
 */
export const DEFAULT_CNN_MODE: CnnMode = 'float';

/** The mode a backbone runs in: MobileNetV2's default; ResNet-50 is built in float only. */
export function backboneMode(backbone: CnnBackbone): CnnMode {
  return backbone === 'mobilenet_v2' ? DEFAULT_CNN_MODE : 'float';
}
