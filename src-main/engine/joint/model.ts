import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelError } from '../errors.ts';
import { modelsDir } from '../paths.ts';
import { SentenceEncoder, type SentenceEncoderOptions } from '../text/encoder.ts';
import { type JointManifest, MANIFEST_FILE } from './manifest.ts';
import { type ImageInput, ImageProjection, type ImageProjectionOptions } from './projection.ts';

/** Where committed joint models live, one directory each. */
export const jointModelsDir = join(modelsDir, 'joint');

export type JointModelOptions = SentenceEncoderOptions & ImageProjectionOptions;

/** Both halves of one exported joint space: sentences and images -> comparable unit vectors (score = dot). */
export class JointModel {
  private constructor(
    readonly dir: string,
    readonly text: SentenceEncoder,
    readonly image: ImageProjection,
  ) {}

  static async open(modelDir: string, options: JointModelOptions = {}): Promise<JointModel> {
    const text = await SentenceEncoder.open(modelDir, options);
    let image: ImageProjection;
    try {
      image = await ImageProjection.open(modelDir, options);
    } catch (error) {
      await text.close();
      throw error;
    }
    // Both read the same manifest; a directory edited between the two reads is not one model.
    if (image.manifest.dim !== text.manifest.dim || image.manifest.name !== text.manifest.name) {
      await Promise.all([text.close(), image.close()]);
      throw new ModelError(
        'invalid-model',
        join(modelDir, MANIFEST_FILE),
        'changed while the model was opening',
      );
    }
    return new JointModel(modelDir, text, image);
  }

  get manifest(): JointManifest {
    return this.image.manifest;
  }

  get name(): string {
    return this.manifest.name;
  }

  get dim(): number {
    return this.manifest.dim;
  }

  /** Row-major [texts.length, dim]; see SentenceEncoder.encode for sentences without words. */
  encodeSentences(texts: readonly string[]): Promise<Float32Array> {
    return this.text.encode(texts);
  }

  /** Row-major [images.length, dim]. */
  embedImages(images: readonly ImageInput[]): Promise<Float32Array> {
    return this.image.embed(images);
  }

  async close(): Promise<void> {
    await Promise.all([this.text.close(), this.image.close()]);
  }
}

/** Directories under `dir` that hold a manifest.json, sorted by name; none when `dir` does not exist. */
export async function listJointModels(dir = jointModelsDir): Promise<string[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const found: string[] = [];
  for (const e of entries.filter((e) => e.isDirectory()).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const files = await readdir(join(dir, e.name)).catch(() => [] as string[]);
    if (files.includes(MANIFEST_FILE)) found.push(join(dir, e.name));
  }
  return found;
}
