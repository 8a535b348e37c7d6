/**
 * The joint model in onnxruntime-node against the numbers it was exported with.
 *
 * Every model directory under models/joint/ that has fixtures.json (and SAGASU_TEST_MODEL_DIR, when set) is
 * checked against its PyTorch fixtures. A tiny model built here, with the same graph as training/export.py
 * and fixtures from a plain-JavaScript GRU, runs the same checks on every machine, so the encoder's padding,
 * batching and column selection are tested even where no trained model exists yet. The checks themselves are
 * in helpers/joint-parity.ts, which training.test.ts also runs on the model CI trains.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataType, OnnxGraphBuilder } from '../src-main/engine/cnn/onnx-writer.ts';
import { ArgumentError, ModelError } from '../src-main/engine/errors.ts';
import { ImageProjection, type LayerColumns, listJointModels } from '../src-main/engine/joint/index.ts';
import {
  FIXTURES_FILE,
  IMAGE_PROJECTION_FILE,
  type JointManifest,
  MANIFEST_FILE,
  TEXT_ENCODER_FILE,
  VOCAB_FILE,
} from '../src-main/engine/modelfiles/index.ts';
import { SentenceEncoder } from '../src-main/engine/text/encoder.ts';
import { TOKENIZER_VERSION } from '../src-main/engine/text/index.ts';
import {
  errorOf,
  type Fixtures,
  layersFor,
  maxAbsDiff,
  paritySuite,
  row,
  type TextFixture,
  TOLERANCE,
} from './helpers/joint-parity.ts';

// -----------------------------------------------------------------------------------------------------------
// The tiny model: export.py's graphs op for op, random weights, fixtures from a reference GRU in JavaScript.

const TINY_VOCAB = [
  '<pad>',
  '<unk>',
  'a',
  'dog',
  'runs',
  'on',
  'the',
  'beach',
  'two',
  'children',
  'play',
  "'s",
  'snow',
];
/** A layer map of 3 layers; the model reads the 1st and 3rd, so its columns are not one contiguous run. */
const TINY_LAYERS: LayerColumns[] = [
  { name: 'L/first', offset: 0, channels: 4 },
  { name: 'L/second', offset: 4, channels: 3 },
  { name: 'L/third', offset: 7, channels: 5 },
];
const TINY_USED = ['L/first', 'L/third'];

function random(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

interface TinyWeights {
  embed: Float32Array; // [V, E]
  W: Float32Array; // [3H, E], gates z, r, h
  R: Float32Array; // [3H, H]
  B: Float32Array; // [6H]: Wb then Rb
  P: Float32Array; // [F, D]
  V: number;
  E: number;
  H: number;
  F: number;
}

function tinyWeights(): TinyWeights {
  const rand = random(42);
  const [V, E, H, F] = [TINY_VOCAB.length, 6, 8, 9];
  const fill = (n: number, scale: number) => Float32Array.from({ length: n }, () => rand() * scale);
  const embed = fill(V * E, 2);
  embed.fill(0, 0, E); // <pad> embeds to zero, as nn.Embedding(padding_idx=0)
  return {
    embed,
    W: fill(3 * H * E, 1.2),
    R: fill(3 * H * H, 1.2),
    B: fill(6 * H, 0.5),
    P: fill(F * H, 1),
    V,
    E,
    H,
    F,
  };
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
function normalize(v: number[]): number[] {
  const n = Math.max(Math.hypot(...v), 1e-12);
  return v.map((x) => x / n);
}

/** ONNX GRU with linear_before_reset=1 (what PyTorch computes), state at the last token, L2-normalized. */
function referenceText(w: TinyWeights, tokens: number[]): number[] {
  const { E, H } = w;
  let h = new Array<number>(H).fill(0);
  for (const t of tokens) {
    const x = Array.from(w.embed.subarray(t * E, (t + 1) * E));
    // Input and recurrent parts kept apart: with linear_before_reset the reset gate scales only the latter.
    const gate = (g: number, j: number) => {
      let wx = w.B[g * H + j] as number;
      for (let e = 0; e < E; e++) wx += (w.W[(g * H + j) * E + e] as number) * (x[e] as number);
      let rh = w.B[3 * H + g * H + j] as number;
      for (let k = 0; k < H; k++) rh += (w.R[(g * H + j) * H + k] as number) * (h[k] as number);
      return { wx, rh };
    };
    const next = new Array<number>(H);
    for (let j = 0; j < H; j++) {
      const zg = gate(0, j);
      const rg = gate(1, j);
      const hg = gate(2, j);
      const z = sigmoid(zg.wx + zg.rh);
      const r = sigmoid(rg.wx + rg.rh);
      const n = Math.tanh(hg.wx + r * hg.rh);
      next[j] = (1 - z) * n + z * (h[j] as number);
    }
    h = next;
  }
  return normalize(h);
}

function referenceImage(w: TinyWeights, features: number[]): number[] {
  const out = new Array<number>(w.H).fill(0);
  for (let f = 0; f < w.F; f++)
    for (let d = 0; d < w.H; d++)
      out[d] = (out[d] as number) + (features[f] as number) * (w.P[f * w.H + d] as number);
  return normalize(out);
}

function tinyTextOnnx(w: TinyWeights): Uint8Array {
  const g = new OnnxGraphBuilder();
  const tokens = g.input('tokens', DataType.INT64, ['batch', 'length']);
  const lengths = g.input('lengths', DataType.INT64, ['batch']);
  const embed = g.initializer('embedding_weight', DataType.FLOAT, [w.V, w.E], w.embed);
  const W = g.initializer('gru_W', DataType.FLOAT, [1, 3 * w.H, w.E], w.W);
  const R = g.initializer('gru_R', DataType.FLOAT, [1, 3 * w.H, w.H], w.R);
  const B = g.initializer('gru_B', DataType.FLOAT, [1, 6 * w.H], w.B);
  const axis1 = g.initializer('axis1', DataType.INT64, [1], BigInt64Array.of(1n));
  const one = g.initializer('one', DataType.INT64, [], BigInt64Array.of(1n));
  const zero = g.initializer('zero', DataType.INT64, [], BigInt64Array.of(0n));
  const words = g.node('Gather', [embed, tokens], 'words', { axis: 0 });
  const wordsT = g.node('Transpose', [words], 'words_t', { perm: [1, 0, 2] });
  const states4 = g.node('GRU', [wordsT, W, R, B], 'states4', { hidden_size: w.H, linear_before_reset: 1 });
  const statesT = g.node('Squeeze', [states4, axis1], 'states_t');
  const states = g.node('Transpose', [statesT], 'states', { perm: [1, 0, 2] });
  const last0 = g.node('Sub', [lengths, one], 'last0');
  const last1 = g.node('Max', [last0, zero], 'last1');
  const lastIndex = g.node('Unsqueeze', [last1, axis1], 'last_index');
  const hidden = g.node('GatherND', [states, lastIndex], 'hidden', { batch_dims: 1 });
  g.output('embedding', normalized(g, hidden), DataType.FLOAT, ['batch', w.H]);
  return g.encode({ graphName: 'tiny_text', opset: 17, producerVersion: '0', docString: '', metadata: {} });
}

function tinyImageOnnx(w: TinyWeights): Uint8Array {
  const g = new OnnxGraphBuilder();
  const features = g.input('features', DataType.FLOAT, ['batch', w.F]);
  const P = g.initializer('projection_weight', DataType.FLOAT, [w.F, w.H], w.P);
  const projected = g.node('MatMul', [features, P], 'projected');
  g.output('embedding', normalized(g, projected), DataType.FLOAT, ['batch', w.H]);
  return g.encode({ graphName: 'tiny_image', opset: 17, producerVersion: '0', docString: '', metadata: {} });
}

function normalized(g: OnnxGraphBuilder, x: string): string {
  const norm = g.node('ReduceL2', [x], 'norm', { axes: [1], keepdims: 1 });
  const floor = g.node('Max', [norm, g.scalarFloat('norm_eps', 1e-12)], 'norm_floor');
  return g.node('Div', [x, floor], 'normalized');
}

/** Writes a complete model directory (manifest with sha256s, vocab, both graphs, fixtures). */
async function writeTinyModel(dir: string, overrides: Partial<JointManifest> = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  const w = tinyWeights();
  const text = (sentences: number[][]): TextFixture => {
    const length = Math.max(...sentences.map((s) => s.length));
    return {
      captions: sentences.map((s) => s.map((t) => TINY_VOCAB[t]).join(' ')),
      tokens: sentences.map((s) => [...s, ...new Array<number>(length - s.length).fill(0)]),
      lengths: sentences.map((s) => s.length),
      embedding: sentences.map((s) => referenceText(w, s)),
    };
  };
  const four = [
    [8, 9, 10, 5, 6, 12], // two children play on the snow
    [3], // dog
    [2, 3, 11, 4], // a dog 's runs
    [6, 3, 4, 5, 6, 7, 2, 3], // the dog runs on the beach a dog
  ];
  const rand = random(7);
  const features = Array.from({ length: 3 }, () =>
    Array.from({ length: w.F }, () => Math.floor((rand() + 0.5) * 3) - 1),
  );
  const fixtures: Fixtures = {
    tolerance: TOLERANCE,
    text: { single: text([[2, 3, 4, 5, 6, 7]]), batch: text(four), alone: four.map((s) => text([s])) },
    image: { features, embedding: features.map((f) => referenceImage(w, f)) },
  };
  const files: Record<string, Uint8Array> = {
    [TEXT_ENCODER_FILE]: tinyTextOnnx(w),
    [IMAGE_PROJECTION_FILE]: tinyImageOnnx(w),
    [VOCAB_FILE]: new TextEncoder().encode(`${TINY_VOCAB.join('\n')}\n`),
    [FIXTURES_FILE]: new TextEncoder().encode(JSON.stringify(fixtures)),
  };
  for (const [name, bytes] of Object.entries(files)) await writeFile(join(dir, name), bytes);
  const used = TINY_USED.map((name) => TINY_LAYERS.find((l) => l.name === name) as LayerColumns);
  let column = 0;
  const manifest = {
    name: 'tiny',
    features: 'fne-blocks',
    featureDim: w.F,
    ternary: true,
    layers: TINY_USED,
    layerColumns: used.map((l) => {
      const entry = { name: l.name, kind: 'conv', offset: column, channels: l.channels, fneOffset: l.offset };
      column += l.channels;
      return entry;
    }),
    dim: w.H,
    wordDim: w.E,
    vocabSize: TINY_VOCAB.length,
    tokenizerVersion: TOKENIZER_VERSION,
    weights: 'fp32',
    files: Object.fromEntries(
      Object.entries(files).map(([name, bytes]) => [
        name,
        { sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length },
      ]),
    ),
    ...overrides,
  };
  await writeFile(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
}

// -----------------------------------------------------------------------------------------------------------

const tinyRoot = await mkdtemp(join(tmpdir(), 'sagasu-tiny-joint-'));
const tiny = join(tinyRoot, 'tiny');
afterAll(async () => {
  await rm(tinyRoot, { recursive: true, force: true });
});

describe('the tiny joint model (export.py graphs, reference GRU in JavaScript)', () => {
  beforeAll(async () => {
    await writeTinyModel(tiny);
  });

  paritySuite('parity', () => ({ dir: tiny, layers: TINY_LAYERS }));

  it('refuses a sentence with no words, naming the argument, and still encodes one of unknown words', async () => {
    const encoder = await SentenceEncoder.open(tiny, { providers: ['cpu'] });
    try {
      const error = await errorOf(() => encoder.encode(['a dog', ' ... !? ']));
      expect(error).toBeInstanceOf(ArgumentError);
      expect(error).toMatchObject({ subject: 'sentence' });
      expect((error as Error).message).toMatch(/#2 .*no words/);
      const unknown = await encoder.encode(['zebras galloping']);
      expect(Math.hypot(...unknown)).toBeCloseTo(1, 5);
      expect(encoder.analyze('Zebras and a dog').unknown).toEqual(['zebras', 'and']);
      expect(await encoder.encode([])).toHaveLength(0);
      expect(await errorOf(() => encoder.encodeIds([Int32Array.of(2, 99)]))).toMatchObject({
        subject: 'tokens',
      });
    } finally {
      await encoder.close();
    }
  });

  it('keeps input order across length-sorted batches smaller than the input', async () => {
    const encoder = await SentenceEncoder.open(tiny, { providers: ['cpu'], batchSize: 2 });
    const texts = ['the dog runs on the beach', 'dog', 'two children play', 'a dog', 'snow'];
    try {
      const together = await encoder.encode(texts);
      for (const [k, t] of texts.entries())
        expect(
          maxAbsDiff(row(together, k, encoder.dim), [Array.from(await encoder.encode([t]))]),
        ).toBeLessThanOrEqual(TOLERANCE);
    } finally {
      await encoder.close();
    }
  });

  it('refuses models that do not fit this app, naming manifest.json', async () => {
    const cases: [Partial<JointManifest>, string, RegExp][] = [
      [{ tokenizerVersion: 'xx-9' }, 'text', /tokenizer xx-9/],
      [{ vocabSize: 99 }, 'text', /holds 13 tokens/],
      [{ layers: ['L/first', 'L/missing'] }, 'image', /L\/missing/],
      [{ featureDim: 10 }, 'image', /add up to 9 columns/],
      [{ features: 'fne-zzz' as 'fne' }, 'image', /features/],
    ];
    for (const [override, half, message] of cases) {
      const dir = join(tinyRoot, `bad-${Object.keys(override)[0]}`);
      await writeTinyModel(dir, override);
      const error = await errorOf(() =>
        half === 'text'
          ? SentenceEncoder.open(dir, { providers: ['cpu'] })
          : ImageProjection.open(dir, { providers: ['cpu'], layers: TINY_LAYERS }),
      );
      expect(error).toBeInstanceOf(ModelError);
      expect((error as Error).message).toMatch(message);
      expect((error as ModelError).file).toMatch(/manifest\.json$|vocab\.txt$/);
    }
  });

  it('refuses image inputs without the features the model needs, naming the image', async () => {
    const projection = await ImageProjection.open(tiny, { providers: ['cpu'], layers: TINY_LAYERS });
    try {
      const good = { fne: new Int8Array(12) };
      const error = await errorOf(() => projection.embed([good, { fne: undefined }]));
      expect(error).toMatchObject({ subject: 'images' });
      expect((error as Error).message).toMatch(/#2:.*statistics/);
      expect(await errorOf(() => projection.embed([{ fne: new Int8Array(17056) }]))).toBeInstanceOf(
        ArgumentError,
      );
    } finally {
      await projection.close();
    }
  });
});

const envDir = process.env.SAGASU_TEST_MODEL_DIR ? resolve(process.env.SAGASU_TEST_MODEL_DIR) : undefined;
const exported = (await listJointModels()).filter((dir) => existsSync(join(dir, FIXTURES_FILE)));
if (envDir && !exported.includes(envDir)) exported.push(envDir);

if (exported.length === 0) {
  describe('exported joint models [skipped: no models/joint/<name>/ with fixtures.json, and SAGASU_TEST_MODEL_DIR unset]', () => {
    it.skip('onnxruntime-node vs the PyTorch fixtures', () => {});
  });
}
for (const dir of exported) {
  describe(`exported joint model ${basename(dir)}`, () => {
    let layers: LayerColumns[] | undefined;
    beforeAll(async () => {
      layers = await layersFor(dir);
    });
    paritySuite(`vs its PyTorch fixtures (${dir})`, () => ({ dir, layers }));
  });
}
