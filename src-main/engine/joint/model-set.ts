import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CnnBackbone } from '../cnn/index.ts';
import { ArgumentError, ModelError } from '../errors.ts';
import { DEFAULT_THRESHOLDS, isPaperThresholds } from '../fne/index.ts';
import {
  jointBackbone,
  jointThresholds,
  MANIFEST_FILE,
  manifestSha256,
  readJointManifest,
} from '../modelfiles/index.ts';
import { modelsDir } from '../paths.ts';

/**
 * What a library's vectors come from: a CNN backbone (with its FNE statistics, fne/stats.ts statsPaths), the
 * English joint model trained on its features, and the Japanese encoder trained into that model's space, if any.
 * Named by the joint model.
 */
export interface ModelSet {
  name: string;
  /** Joint name + sha256 of its manifest.json: the identity a vector row records (a retrained model is another). */
  version: string;
  backbone: CnnBackbone;
  dim: number;
  jointDir: string;
  /** The Japanese encoder's directory; null when the set answers English only. */
  jaDir: string | null;
}

/** The set every library starts with. */
export const DEFAULT_MODEL_SET = 'fne';

interface JointEntry {
  dir?: unknown;
  language?: unknown;
  imageModel?: { name?: unknown };
}

/**
 * The model sets models/manifest.json lists (each English joint entry; Japanese entries attach to the model they
 * name as imageModel), in its order. A backbone is what the joint manifest's data.backbone says (absent before
 * ResNet-50: mobilenet_v2).
 */
export async function listModelSets(dir = modelsDir): Promise<ModelSet[]> {
  const file = join(dir, MANIFEST_FILE);
  let joint: Record<string, JointEntry>;
  try {
    joint = (JSON.parse(await readFile(file, 'utf8')) as { joint?: Record<string, JointEntry> }).joint ?? {};
  } catch (cause) {
    throw new ModelError(
      'invalid-model',
      file,
      `cannot read the models manifest: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  const entries = Object.entries(joint).filter(([, e]) => typeof e.dir === 'string');
  const sets: ModelSet[] = [];
  for (const [name, entry] of entries) {
    if (entry.imageModel || (entry.language !== undefined && entry.language !== 'en')) continue;
    const jointDir = join(dir, entry.dir as string);
    const manifest = await readJointManifest(jointDir);
    // readJointManifest refuses a backbone that is not one of CNN_BACKBONES, naming the file.
    const backbone = jointBackbone(manifest);
    // The indexer ternarizes every photo with the paper's thresholds (one FNE pass per backbone).
    const thresholds = jointThresholds(manifest);
    if (!isPaperThresholds(thresholds))
      throw new ModelError(
        'invalid-model',
        join(jointDir, MANIFEST_FILE),
        `was trained on features ternarized at ${thresholds.negative} / ${thresholds.positive}, the library indexes with the paper's ${DEFAULT_THRESHOLDS.negative} / ${DEFAULT_THRESHOLDS.positive}: score it with npm run eval, or train it on the paper's`,
      );
    const ja = entries.find(([, e]) => e.language === 'ja' && e.imageModel?.name === manifest.name);
    sets.push({
      name,
      version: `${manifest.name}@${manifestSha256(jointDir).slice(0, 16)}`,
      backbone,
      dim: manifest.dim,
      jointDir,
      jaDir: ja ? join(dir, ja[1].dir as string) : null,
    });
  }
  return sets;
}

/** The set of this name, or an ArgumentError on `argument` listing the choices. */
export function findModelSet(sets: readonly ModelSet[], name: string, argument = 'modelSet'): ModelSet {
  const set = sets.find((s) => s.name === name);
  if (!set)
    throw new ArgumentError(
      argument,
      `no model set is named ${JSON.stringify(name)}; choose one of ${sets.map((s) => s.name).join(', ') || '(none installed)'}`,
    );
  return set;
}
