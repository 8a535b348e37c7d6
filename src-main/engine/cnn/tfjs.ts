import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { ModelError } from '../errors.ts';

/** One Keras layer of a TensorFlow.js layers model, with the names of the layers that feed it. */
export interface KerasLayer {
  name: string;
  className: string;
  config: Record<string, unknown>;
  inputs: string[];
}

export interface KerasWeight {
  shape: number[];
  values: Float32Array;
}

/** A TensorFlow.js layers model: the Keras layer graph in file order and its weights by name ("conv1/kernel"). */
export interface TfjsLayersModel {
  file: string;
  generatedBy: string;
  layers: KerasLayer[];
  inputs: string[];
  outputs: string[];
  weights: Map<string, KerasWeight>;
}

const inboundRef = z.tuple([z.string(), z.number(), z.number()], z.unknown());
const modelJson = z.object({
  format: z.literal('layers-model'),
  generatedBy: z.string().optional(),
  modelTopology: z.object({
    model_config: z.object({
      class_name: z.string(),
      config: z.object({
        layers: z.array(
          z.object({
            name: z.string(),
            class_name: z.string(),
            config: z.record(z.string(), z.unknown()),
            inbound_nodes: z.array(z.array(inboundRef)),
          }),
        ),
        input_layers: z.array(inboundRef),
        output_layers: z.array(inboundRef),
      }),
    }),
  }),
  weightsManifest: z.array(
    z.object({
      paths: z.array(z.string()),
      weights: z.array(z.object({ name: z.string(), shape: z.array(z.number()), dtype: z.string() })),
    }),
  ),
});

async function readOrFail(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (cause) {
    throw new ModelError('missing', path, `cannot be read: ${(cause as Error).message}`, { cause });
  }
}

/** Reads `model.json` and its weight shards from `dir`. */
export async function readTfjsLayersModel(dir: string, jsonName = 'model.json'): Promise<TfjsLayersModel> {
  const file = join(dir, jsonName);
  let parsed: z.infer<typeof modelJson>;
  try {
    parsed = modelJson.parse(JSON.parse((await readOrFail(file)).toString('utf8')));
  } catch (cause) {
    if (cause instanceof ModelError) throw cause;
    const why = cause instanceof z.ZodError ? z.prettifyError(cause).replaceAll('\n', ' ') : String(cause);
    throw new ModelError('invalid-model', file, `is not a TensorFlow.js layers model: ${why}`, { cause });
  }
  const config = parsed.modelTopology.model_config.config;
  const layers = config.layers.map((l): KerasLayer => {
    if (l.inbound_nodes.length > 1)
      throw new ModelError('unsupported-op', file, `layer ${l.name} is shared (called more than once)`);
    return {
      name: l.name,
      className: l.class_name,
      config: l.config,
      inputs: (l.inbound_nodes[0] ?? []).map(([name, node, tensor]) => {
        if (node !== 0 || tensor !== 0)
          throw new ModelError('unsupported-op', file, `layer ${l.name} reads output ${tensor} of ${name}`);
        return name;
      }),
    };
  });

  const weights = new Map<string, KerasWeight>();
  for (const group of parsed.weightsManifest) {
    const shards = await Promise.all(group.paths.map((p) => readOrFail(join(dir, p))));
    const bytes = Buffer.concat(shards);
    let at = 0;
    for (const w of group.weights) {
      if (w.dtype !== 'float32')
        throw new ModelError('unsupported-op', file, `weight ${w.name} is ${w.dtype}; only float32 is read`);
      const count = w.shape.reduce((a, b) => a * b, 1);
      if (at + 4 * count > bytes.length)
        throw new ModelError(
          'invalid-model',
          file,
          `the shards ${group.paths.join(', ')} end before weight ${w.name} (need ${at + 4 * count} bytes, have ${bytes.length})`,
        );
      // A copy, aligned: a view into the concatenated shards could start at an odd byte.
      const values = new Float32Array(new Uint8Array(bytes.subarray(at, at + 4 * count)).buffer);
      weights.set(w.name, { shape: w.shape, values });
      at += 4 * count;
    }
  }
  return {
    file,
    generatedBy: parsed.generatedBy ?? 'unknown',
    layers,
    inputs: config.input_layers.map(([name]) => name),
    outputs: config.output_layers.map(([name]) => name),
    weights,
  };
}
