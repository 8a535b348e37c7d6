import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { CNN_BACKBONES, type CnnBackbone } from '../cnn/index.ts';
import { ModelError } from '../errors.ts';
import { sha256Hex } from '../files.ts';
import { DEFAULT_THRESHOLDS, type Thresholds } from '../fne/index.ts';

/** The image features a joint model was trained on (training/data.py FEATURE_KINDS). */
const FEATURE_KINDS = ['fne', 'one-layer', 'fne-blocks', 'fne-last'] as const;
export type FeatureKind = (typeof FEATURE_KINDS)[number];

export const TEXT_ENCODER_FILE = 'text_encoder.onnx';
export const IMAGE_PROJECTION_FILE = 'image_projection.onnx';
export const VOCAB_FILE = 'vocab.txt';
export const MANIFEST_FILE = 'manifest.json';
export const FIXTURES_FILE = 'fixtures.json';

const fileEntry = z.object({
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().nonnegative(),
});
const layerColumn = z.object({
  name: z.string(),
  offset: z.number().int().nonnegative(),
  channels: z.number().int().positive(),
  fneOffset: z.number().int().nonnegative().optional(),
});

// Only what the app relies on is checked; the rest (training settings, validation figures, versions) is kept
// as written for reports. Key names follow training/export.py.
const schema = z.looseObject({
  name: z.string().min(1),
  features: z.enum(FEATURE_KINDS),
  featureDim: z.number().int().positive(),
  layers: z.array(z.string()).nullish(),
  layerColumns: z.array(layerColumn).nullish(),
  dim: z.number().int().positive(),
  vocabSize: z.number().int().min(2),
  tokenizerVersion: z.string().nullish(),
  weights: z.string().optional(),
  files: z.record(z.string(), fileEntry),
  /** The sentences' language (absent: English, as every model before the Japanese encoder). */
  language: z.enum(['en', 'ja']).optional(),
  /**
   * Set on a text-only model (a sentence encoder for another language, trained into an existing space): the
   * joint model whose image side it was trained against, and the sha256 of that model's manifest.json.
   */
  imageModel: z
    .object({ name: z.string().min(1), manifestSha256: z.string().regex(/^[0-9a-f]{64}$/) })
    .optional(),
  best: z.looseObject({ epoch: z.number().optional(), val: z.unknown() }).optional(),
  /** What it was trained on; `backbone` is absent in models exported before a second CNN existed. */
  data: z
    .looseObject({
      backbone: z.enum(CNN_BACKBONES as [CnnBackbone, ...CnnBackbone[]]).optional(),
      /** Absent: the paper's. Written by export.py for a model trained on features ternarized otherwise. */
      thresholds: z.object({ positive: z.number(), negative: z.number() }).optional(),
    })
    .optional(),
});

export type JointManifest = z.infer<typeof schema>;

/** A model directory as written by training/export.py: its manifest, read and checked for shape. */
export async function readJointManifest(modelDir: string): Promise<JointManifest> {
  const file = join(modelDir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new ModelError('missing', file, 'no joint model here (a model directory holds manifest.json)', {
      cause,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new ModelError('invalid-model', file, `not JSON: ${(cause as Error).message}`, { cause });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ModelError(
      'invalid-model',
      file,
      `not a joint-model manifest: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`,
    );
  }
  const manifest = parsed.data;
  if (manifest.features !== 'one-layer' && !manifest.layers?.length)
    throw new ModelError(
      'invalid-model',
      file,
      `features "${manifest.features}" are ternary columns of named layers, but "layers" is empty`,
    );
  return manifest;
}

/** The CNN whose features a joint model projects: models exported before ResNet-50 existed are MobileNetV2's. */
export function jointBackbone(manifest: JointManifest): CnnBackbone {
  return manifest.data?.backbone ?? 'mobilenet_v2';
}

/** The ternarization thresholds a joint model was trained on: its photos' FNE must use the same. */
export function jointThresholds(manifest: JointManifest): Thresholds {
  return manifest.data?.thresholds ?? DEFAULT_THRESHOLDS;
}

/**
 * sha256 of a model directory's manifest.json: the identity of one export, so that a retrained model of the
 * same name is another model (its embeddings, cutoff, caption vectors and companion encoders are not reused).
 */
export function manifestSha256(modelDir: string): string {
  return sha256Hex(readFileSync(join(modelDir, MANIFEST_FILE)));
}

/**
 * The bytes of one file of the model directory, checked against the manifest's sha256 and size. The caller
 * runs exactly these bytes, so what was checked is what runs.
 */
export async function readVerified(
  modelDir: string,
  manifest: JointManifest,
  name: string,
): Promise<Uint8Array> {
  const file = join(modelDir, name);
  const expected = manifest.files[name];
  if (!expected)
    throw new ModelError('invalid-model', join(modelDir, MANIFEST_FILE), `lists no sha256 for ${name}`);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (cause) {
    throw new ModelError('missing', file, `the model directory lacks ${name}, which manifest.json lists`, {
      cause,
    });
  }
  const actual = sha256Hex(bytes);
  if (actual !== expected.sha256 || bytes.length !== expected.bytes)
    throw new ModelError(
      'sha256-mismatch',
      file,
      `this file is not the one the model was exported with (sha256 ${actual}, ${bytes.length} bytes; manifest.json says ${expected.sha256}, ${expected.bytes} bytes); re-export or restore the model directory`,
    );
  return bytes;
}
