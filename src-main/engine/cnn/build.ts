import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelError } from '../errors.ts';
import { modelsDir } from '../paths.ts';
import { type CnnMode, convertTfliteToOnnx, type LayerInfo } from './converter.ts';
import { parseImagenetLabels } from './labels.ts';
import type { CnnModelInfo } from './session.ts';
import { type ObtainOptions, obtainUpstreamFile, sha256File, UPSTREAM_FILES } from './source.ts';
import { readTflite } from './tflite.ts';

/** Bumped whenever the converter's output changes, so `models:prepare` rebuilds stale models. */
export const CONVERTER_VERSION = 2;

export const cnnDir = join(modelsDir, 'cnn');
const BASE = UPSTREAM_FILES.model.name.replace(/\.tflite$/, '');

export function cnnModelPath(mode: CnnMode, dir = cnnDir): string {
  return join(dir, `${BASE}.${mode}.onnx`);
}
/** The layer map and provenance written beside each ONNX file. */
export function cnnManifestPath(mode: CnnMode, dir = cnnDir): string {
  return join(dir, `${BASE}.${mode}.json`);
}
export const labelsPath = join(cnnDir, 'labels.txt');

export interface CnnManifest extends CnnModelInfo {
  mode: CnnMode;
  converterVersion: number;
  source: { file: string; sha256: string };
  onnx: { file: string; sha256: string; bytes: number };
  layers: LayerInfo[];
}

async function readManifest(mode: CnnMode, dir: string): Promise<CnnManifest | undefined> {
  try {
    return JSON.parse(await readFile(cnnManifestPath(mode, dir), 'utf8')) as CnnManifest;
  } catch {
    return undefined;
  }
}

/**
 * Checks a built model against its manifest and returns the manifest. A model file that differs from what
 * was built (truncated, edited, half-copied) is refused by name, with the sha256 it should have.
 */
export async function verifiedCnn(mode: CnnMode, dir = cnnDir): Promise<CnnManifest> {
  const manifest = await readManifest(mode, dir);
  const file = cnnModelPath(mode, dir);
  if (!manifest)
    throw new ModelError(
      'missing',
      cnnManifestPath(mode, dir),
      'the CNN is not built yet; run `npm run models:prepare`',
    );
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
    const manifest: CnnManifest = {
      mode,
      converterVersion: CONVERTER_VERSION,
      source: { file: UPSTREAM_FILES.model.name, sha256: UPSTREAM_FILES.model.sha256 },
      onnx: {
        file: cnnModelPath(mode).slice(cnnDir.length + 1),
        sha256: createHash('sha256').update(converted.onnx).digest('hex'),
        bytes: converted.onnx.length,
      },
      fneDim: converted.fneDim,
      oneLayer: converted.oneLayer,
      inputSize: converted.inputSize,
      classes: converted.classes,
      layers: converted.layers,
    };
    await writeAtomically(cnnModelPath(mode), converted.onnx);
    await writeAtomically(cnnManifestPath(mode), `${JSON.stringify(manifest, null, 1)}\n`);
    log(
      `cnn: built ${cnnModelPath(mode)} (${mode}, ${converted.layers.length} layers, FNE ${converted.fneDim}-d)`,
    );
    built[mode] = manifest;
  }
  return built;
}
