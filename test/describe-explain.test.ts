/**
 * "Why this match": the score of an image against a sentence, split exactly by CNN layer.
 *
 * On the shipped models, real photos go through the whole image path (decode, CNN, FNE) and real sentences
 * through the encoder; the per-layer contributions must add up to the score onnxruntime computes with the
 * model's own image_projection.onnx. Tiny graphs built here in the shapes an fp16 or int8 export takes check
 * that the weight reader folds each one into the same W onnxruntime multiplies by, and refuses a graph whose
 * score would not split exactly (a bias).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataType, OnnxGraphBuilder } from '../src-main/engine/cnn/index.ts';
import { blockOf, LayerExplainer } from '../src-main/engine/describe/index.ts';
import { ArgumentError, ModelError } from '../src-main/engine/errors.ts';
import { FneExtractor, type ImageFeatures } from '../src-main/engine/fne/index.ts';
import { JointModel, jointModelsDir } from '../src-main/engine/joint/index.ts';
import { readProjectionWeights } from '../src-main/engine/modelfiles/index.ts';
import { cnnBuilt, referenceDir, skipNote } from './helpers/shared.ts';

const SENTENCES = [
  'a dog runs on the beach',
  'a cat lying on a bed',
  'a bird with colourful feathers',
  'a man in a uniform',
  'yellow flowers',
];
const MAX_DIFF = 1e-4;

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let j = 0; j < a.length; j++) s += (a[j] as number) * (b[j] as number);
  return s;
}

const fneDir = join(jointModelsDir, 'fne');
const oneLayerDir = join(jointModelsDir, 'one-layer');
const realNote = skipNote({ shared: true, cnn: true });

describe.skipIf(realNote !== '')(`shipped models on the reference photos${realNote}`, () => {
  let features: ImageFeatures[] = [];
  beforeAll(async () => {
    const photos = join(referenceDir as string, 'photos');
    const files = ['chelsea.png', 'coral_parrot.jpg', 'coral_sunflower.png', 'coral_grace_hopper.png'].map(
      (f) => join(photos, f),
    );
    const extractor = await FneExtractor.open({ threads: 1 });
    try {
      for await (const r of extractor.extract(files)) {
        if (!r.ok) throw r.error;
        features.push(r.features);
      }
    } finally {
      await extractor.close();
    }
  });
  afterAll(() => {
    features = [];
  });

  for (const dir of [fneDir, oneLayerDir]) {
    it(`${dir.split('/').at(-1)}: contributions sum to the model's own ONNX score`, async () => {
      const model = await JointModel.open(dir);
      try {
        const explainer = await LayerExplainer.open(dir);
        const sentences = await model.encodeSentences(SENTENCES);
        const images = await model.embedImages(features);
        const d = model.dim;
        let worst = 0;
        for (let q = 0; q < SENTENCES.length; q++) {
          const s = sentences.subarray(q * d, (q + 1) * d);
          const many = explainer.explainMany(features, s);
          for (const [i, f] of features.entries()) {
            const onnxScore = dot(images.subarray(i * d, (i + 1) * d), s);
            const e = explainer.explain(
              model.manifest.features === 'one-layer' ? f : (f.fne as Int8Array),
              s,
            );
            const layerSum = e.layers.reduce((a, l) => a + l.contribution, 0);
            const blockSum = e.blocks.reduce((a, b) => a + b.contribution, 0);
            worst = Math.max(worst, Math.abs(layerSum - onnxScore), Math.abs(blockSum - onnxScore));
            expect(Math.abs(e.score - onnxScore)).toBeLessThan(MAX_DIFF);
            expect(many[i]?.score).toBeCloseTo(e.score, 12);
          }
        }
        expect(worst).toBeLessThan(MAX_DIFF);
      } finally {
        await model.close();
      }
    });
  }

  it('names the 52 layers and the 18 MobileNetV2 blocks in network order', async () => {
    const explainer = await LayerExplainer.open(fneDir);
    const model = await JointModel.open(fneDir);
    try {
      const [s] = [await model.encodeSentences(['a cat'])];
      const e = explainer.explain(features[0]?.fne as Int8Array, s);
      expect(e.layers).toHaveLength(52);
      expect(e.layers.map((l) => l.name)).toEqual(model.manifest.layers);
      expect(e.blocks.map((b) => b.block)).toEqual([
        'stem',
        ...Array.from({ length: 16 }, (_, k) => `block_${k + 1}`),
        'head',
      ]);
      const stem = e.layers.filter((l) => l.block === 'stem').map((l) => l.name);
      expect(stem).toEqual([
        'MobilenetV2/Conv/Relu6',
        'MobilenetV2/expanded_conv/depthwise/Relu6',
        'MobilenetV2/expanded_conv/project/add_fold',
      ]);
      expect(e.layers.filter((l) => l.block === 'head').map((l) => l.name)).toEqual([
        'MobilenetV2/Conv_1/Relu6',
      ]);
      // Each block's sum is the sum of its own layers.
      for (const b of e.blocks) {
        const own = e.layers.filter((l) => l.block === b.block).reduce((a, l) => a + l.contribution, 0);
        expect(b.contribution).toBeCloseTo(own, 12);
      }
    } finally {
      await model.close();
    }
  });

  it('refuses an FNE of the wrong length and a sentence of the wrong dimension, by argument', async () => {
    const explainer = await LayerExplainer.open(fneDir);
    const s = new Float32Array(explainer.dim);
    s[0] = 1;
    expect(() => explainer.explain(new Int8Array(100), s)).toThrow(ArgumentError);
    expect(() => explainer.explain(features[0]?.fne as Int8Array, new Float32Array(3))).toThrow(/sentence/);
    expect(() => explainer.explainMany([features[0]?.fne as Int8Array, new Int8Array(5)], s)).toThrow(/#2/);
  });
});

describe('blockOf', () => {
  it('maps MobileNetV2 layer names to stem, block_N and head', () => {
    expect(blockOf('MobilenetV2/Conv/Relu6')).toBe('stem');
    expect(blockOf('MobilenetV2/expanded_conv/project/add_fold')).toBe('stem');
    expect(blockOf('MobilenetV2/expanded_conv_1/expand/Relu6')).toBe('block_1');
    expect(blockOf('MobilenetV2/expanded_conv_16/depthwise/Relu6')).toBe('block_16');
    expect(blockOf('MobilenetV2/Conv_1/Relu6')).toBe('head');
  });
});

// -----------------------------------------------------------------------------------------------------------
// Tiny projections in every form an export can take; onnxruntime is the judge of what W they compute.

const F = 24;
const D = 6;
type Code = (typeof DataType)[keyof typeof DataType];
const FLOAT16 = 10 as Code;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** float -> IEEE half bits (round to nearest; the weights here are small normal numbers). */
function toHalf(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0] as number;
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  if (exp <= 0) return sign;
  const mant = u & 0x7fffff;
  let h = sign | (exp << 10) | (mant >>> 13);
  if (mant & 0x1000) h += 1;
  return h;
}

function normalizeTail(g: OnnxGraphBuilder, projected: string): void {
  const norm = g.node('ReduceL2', [projected], 'norm', { axes: [1], keepdims: 1 });
  const floor = g.node('Max', [norm, g.scalarFloat('norm_eps', 1e-12)], 'norm_floor');
  const out = g.node('Div', [projected, floor], 'normalized');
  g.output('embedding', out, DataType.FLOAT, ['batch', D]);
}

function encode(g: OnnxGraphBuilder): Uint8Array {
  return g.encode({ graphName: 'tiny', opset: 17, producerVersion: 'test', docString: '', metadata: {} });
}

const random = rng(7);
const weights = Float32Array.from({ length: F * D }, () => (random() - 0.5) * 0.4);

const graphs: Record<string, () => Uint8Array> = {
  'float32 MatMul': () => {
    const g = new OnnxGraphBuilder();
    const x = g.input('features', DataType.FLOAT, ['batch', F]);
    const w = g.initializer('projection_weight', DataType.FLOAT, [F, D], weights);
    normalizeTail(g, g.node('MatMul', [x, w], 'projected'));
    return encode(g);
  },
  'float16 behind a Cast (export.py --weights fp16)': () => {
    const g = new OnnxGraphBuilder();
    const x = g.input('features', DataType.FLOAT, ['batch', F]);
    const half = Uint16Array.from(weights, toHalf);
    const w16 = g.initializer('projection_weight_fp16', FLOAT16, [F, D], half);
    const w = g.node('Cast', [w16], 'projection_weight', { to: DataType.FLOAT });
    normalizeTail(g, g.node('MatMul', [x, w], 'projected'));
    return encode(g);
  },
  'int8 with per-output DequantizeLinear': () => {
    const g = new OnnxGraphBuilder();
    const x = g.input('features', DataType.FLOAT, ['batch', F]);
    const scales = new Float32Array(D);
    const q = new Int8Array(F * D);
    for (let j = 0; j < D; j++) {
      let m = 0;
      for (let r = 0; r < F; r++) m = Math.max(m, Math.abs(weights[r * D + j] as number));
      scales[j] = m / 127;
      for (let r = 0; r < F; r++)
        q[r * D + j] = Math.round((weights[r * D + j] as number) / (scales[j] as number));
    }
    const wq = g.initializer('w_int8', DataType.INT8, [F, D], q);
    const s = g.initializer('w_scale', DataType.FLOAT, [D], scales);
    const zero = g.initializer('w_zero', DataType.INT8, [D], new Int8Array(D));
    const w = g.node('DequantizeLinear', [wq, s, zero], 'projection_weight', { axis: 1 });
    normalizeTail(g, g.node('MatMul', [x, w], 'projected'));
    return encode(g);
  },
  'int8 Cast, MatMul, then a per-output Mul': () => {
    const g = new OnnxGraphBuilder();
    const x = g.input('features', DataType.FLOAT, ['batch', F]);
    const q = Int8Array.from(weights, (v) => Math.round(v * 300));
    const wq = g.initializer('w_int8', DataType.INT8, [F, D], q);
    const w = g.node('Cast', [wq], 'w_float', { to: DataType.FLOAT });
    const p = g.node('MatMul', [x, w], 'unscaled');
    const scale = Float32Array.from({ length: D }, (_, j) => (j + 1) / 300);
    normalizeTail(g, g.node('Mul', [p, g.initializer('out_scale', DataType.FLOAT, [D], scale)], 'projected'));
    return encode(g);
  },
};

describe('projection weights read out of the ONNX graph', () => {
  for (const [name, build] of Object.entries(graphs)) {
    it(`${name}: normalize(x·W)·s matches onnxruntime`, async () => {
      const bytes = build();
      const read = readProjectionWeights(bytes, name);
      expect([read.featureDim, read.dim]).toEqual([F, D]);
      expect(read.eps).toBeCloseTo(1e-12, 20);
      const session = await ort.InferenceSession.create(bytes);
      try {
        const n = 16;
        const r = rng(11);
        const x = Float32Array.from({ length: n * F }, () => Math.floor(r() * 3) - 1);
        const out = (await session.run({ features: new ort.Tensor('float32', x, [n, F]) })).embedding
          ?.data as Float32Array;
        for (let i = 0; i < n; i++) {
          const p = new Float64Array(D);
          for (let c = 0; c < F; c++)
            for (let j = 0; j < D; j++)
              p[j] = (p[j] as number) + (x[i * F + c] as number) * (read.w[c * D + j] as number);
          const norm = Math.max(Math.hypot(...p), read.eps);
          for (let j = 0; j < D; j++)
            expect(Math.abs((p[j] as number) / norm - (out[i * D + j] as number))).toBeLessThan(1e-5);
        }
      } finally {
        await session.release();
      }
    });
  }

  it('refuses a projection with a bias, since its score would not split by layer', () => {
    const g = new OnnxGraphBuilder();
    const x = g.input('features', DataType.FLOAT, ['batch', F]);
    const w = g.initializer('projection_weight', DataType.FLOAT, [F, D], weights);
    const p = g.node('MatMul', [x, w], 'unbiased');
    normalizeTail(
      g,
      g.node('Add', [p, g.initializer('bias', DataType.FLOAT, [D], new Float32Array(D))], 'projected'),
    );
    expect(() => readProjectionWeights(encode(g), 'biased.onnx')).toThrow(ModelError);
    expect(() => readProjectionWeights(encode(g), 'biased.onnx')).toThrow(/Add/);
  });

  it('refuses bytes that are not ONNX, by file name', () => {
    expect(() => readProjectionWeights(new Uint8Array([1, 2, 3, 4, 5]), 'junk.onnx')).toThrow(/junk\.onnx/);
  });

  it.skipIf(!cnnBuilt || !existsSync(join(fneDir, 'image_projection.onnx')))(
    'the shipped FNE projection: the float16 weight the manifest names, [17056, 512]',
    async () => {
      const explainer = await LayerExplainer.open(fneDir);
      expect(explainer.dim).toBe(512);
      expect(explainer.layers.reduce((a, l) => a + l.channels, 0)).toBe(17056);
    },
  );
});
