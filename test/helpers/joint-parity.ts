/**
 * The parity suite of a joint model directory: onnxruntime-node against the PyTorch fixtures that
 * training/export.py wrote beside it (one sentence, a 0-padded batch of four, each of the four alone, image
 * rows), plus the refusals of tampered files. Shared by joint.test.ts (the tiny model, models/joint/*) and
 * training.test.ts (the model CI trains), so every exported model is held to the same checks.
 */
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CNN_MODE, verifiedCnn } from '../../src-main/engine/cnn/index.ts';
import { ModelError } from '../../src-main/engine/errors.ts';
import { ImageProjection, JointModel, type LayerColumns } from '../../src-main/engine/joint/index.ts';
import {
  FIXTURES_FILE,
  IMAGE_PROJECTION_FILE,
  type JointManifest,
  MANIFEST_FILE,
  TEXT_ENCODER_FILE,
  VOCAB_FILE,
} from '../../src-main/engine/modelfiles/index.ts';
import { SentenceEncoder } from '../../src-main/engine/text/encoder.ts';
import { cnnBuilt } from './shared.ts';

export const TOLERANCE = 1e-5;

export interface TextFixture {
  captions: string[];
  tokens: number[][];
  lengths: number[];
  embedding: number[][];
}
export interface Fixtures {
  tolerance?: number;
  text: { single: TextFixture; batch: TextFixture; alone: TextFixture[] };
  image: { features: number[][]; embedding: number[][] };
}

export function maxAbsDiff(actual: Float32Array, expected: number[][]): number {
  const flat = expected.flat();
  expect(actual.length).toBe(flat.length);
  let worst = 0;
  for (const [k, v] of flat.entries()) worst = Math.max(worst, Math.abs((actual[k] as number) - v));
  return worst;
}

export const row = (data: Float32Array, r: number, dim: number) => data.subarray(r * dim, (r + 1) * dim);
export const ids = (f: TextFixture) => f.tokens.map((t, r) => Int32Array.from(t.slice(0, f.lengths[r])));

export function errorOf(f: () => unknown): Promise<unknown> {
  return Promise.resolve()
    .then(f)
    .then(
      () => {
        throw new Error('expected an error');
      },
      (error: unknown) => error,
    );
}

// -----------------------------------------------------------------------------------------------------------
// The parity suite, for the tiny model, every exported one and the one CI trains.

export interface Subject {
  dir: string;
  /** The layer map the model's FNE columns are looked up in. */
  layers: LayerColumns[] | undefined;
}

export async function layersFor(dir: string): Promise<LayerColumns[] | undefined> {
  const manifest = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')) as JointManifest;
  if (manifest.features === 'one-layer') return undefined;
  // The built CNN's map when there is one: then the test also proves the model fits this checkout's CNN.
  if (cnnBuilt) return (await verifiedCnn(DEFAULT_CNN_MODE)).layers;
  return (manifest.layerColumns ?? []).map((l) => ({
    name: l.name,
    offset: l.fneOffset ?? 0,
    channels: l.channels,
  }));
}

export function paritySuite(name: string, subject: () => Subject): void {
  describe(name, () => {
    let model: JointModel;
    let fixtures: Fixtures;
    let tolerance: number;

    beforeAll(async () => {
      const { dir, layers } = subject();
      fixtures = JSON.parse(await readFile(join(dir, FIXTURES_FILE), 'utf8')) as Fixtures;
      tolerance = Math.min(TOLERANCE, fixtures.tolerance ?? TOLERANCE);
      model = await JointModel.open(dir, { providers: ['cpu'], ...(layers ? { layers } : {}) });
    });
    afterAll(async () => {
      await model?.close();
    });

    it('encodes one sentence as PyTorch did (max |diff| <= 1e-5)', async () => {
      const f = fixtures.text.single;
      expect(maxAbsDiff(await model.text.encodeIds(ids(f)), f.embedding)).toBeLessThanOrEqual(tolerance);
    });

    it('runs the padded batch of 4 exactly as given (0-padded tokens + lengths) as PyTorch did', async () => {
      const f = fixtures.text.batch;
      expect(new Set(f.lengths).size).toBeGreaterThan(1);
      const session = await ort.InferenceSession.create(join(subject().dir, TEXT_ENCODER_FILE), {
        executionProviders: ['cpu'],
      });
      try {
        const [b, l] = [f.tokens.length, (f.tokens[0] as number[]).length];
        const result = await session.run({
          tokens: new ort.Tensor('int64', BigInt64Array.from(f.tokens.flat(), BigInt), [b, l]),
          lengths: new ort.Tensor('int64', BigInt64Array.from(f.lengths, BigInt), [b]),
        });
        const padded = result.embedding?.data as Float32Array;
        expect(maxAbsDiff(padded, f.embedding)).toBeLessThanOrEqual(tolerance);
        // Each row of the padded batch is what that sentence gives alone, in onnxruntime too.
        for (const [r, alone] of fixtures.text.alone.entries())
          expect(
            maxAbsDiff(await model.text.encodeIds(ids(alone)), [Array.from(row(padded, r, model.dim))]),
          ).toBeLessThanOrEqual(tolerance);
      } finally {
        await session.release();
      }
      // And through the encoder, which re-batches by length.
      expect(maxAbsDiff(await model.text.encodeIds(ids(f)), f.embedding)).toBeLessThanOrEqual(tolerance);
    });

    it('gives each sentence alone the vector it gets inside the padded batch', async () => {
      const f = fixtures.text.batch;
      const batch = await model.text.encodeIds(ids(f));
      for (const [r, alone] of fixtures.text.alone.entries()) {
        const mine = await model.text.encodeIds(ids(alone));
        expect(maxAbsDiff(mine, alone.embedding)).toBeLessThanOrEqual(tolerance);
        expect(maxAbsDiff(mine, [Array.from(row(batch, r, model.dim))])).toBeLessThanOrEqual(tolerance);
      }
    });

    it('reaches the same token ids and vectors from the caption text, through the app tokenizer', async () => {
      const cases = [fixtures.text.single, ...fixtures.text.alone].filter(
        (f) => !f.captions[0]?.includes('<unk>'),
      );
      expect(cases.length, 'fixture captions without <unk>').toBeGreaterThan(0);
      for (const f of cases) {
        const text = f.captions[0] as string;
        expect([...model.text.tokenIds(text)], text).toEqual([...(ids(f)[0] as Int32Array)]);
        expect(maxAbsDiff(await model.text.encode([text]), f.embedding)).toBeLessThanOrEqual(tolerance);
      }
    });

    it('projects the image feature rows as PyTorch did, whatever the batch size', async () => {
      const { features, embedding } = fixtures.image;
      const rows = Float32Array.from(features.flat());
      expect(maxAbsDiff(await model.image.embedFeatures(rows), embedding)).toBeLessThanOrEqual(tolerance);
      const { dir, layers } = subject();
      const small = await ImageProjection.open(dir, {
        providers: ['cpu'],
        batchSize: 2,
        ...(layers ? { layers } : {}),
      });
      try {
        expect(maxAbsDiff(await small.embedFeatures(rows), embedding)).toBeLessThanOrEqual(tolerance);
      } finally {
        await small.close();
      }
    });

    it("picks the model's columns out of the engine's per-image outputs", async () => {
      const { features, embedding } = fixtures.image;
      const { layers } = subject();
      const inputs = features.map((f) => {
        if (model.manifest.features === 'one-layer') return { oneLayer: Float32Array.from(f) };
        // Scatter the model's columns back to where the CNN puts them; the others hold noise it must ignore.
        const map = layers as LayerColumns[];
        const fne = Int8Array.from(
          { length: Math.max(...map.map((l) => l.offset + l.channels)) },
          (_, j) => (j % 3) - 1,
        );
        let k = 0;
        for (const name of model.manifest.layers ?? []) {
          const l = map.find((x) => x.name === name) as LayerColumns;
          for (let c = 0; c < l.channels; c++) fne[l.offset + c] = f[k++] as number;
        }
        return { fne, oneLayer: new Float32Array(1) };
      });
      expect(maxAbsDiff(await model.embedImages(inputs), embedding)).toBeLessThanOrEqual(tolerance);
    });

    it('refuses a tampered or missing model file, naming it', async () => {
      const { dir, layers } = subject();
      const copy = await mkdtemp(join(tmpdir(), 'sagasu-joint-'));
      try {
        for (const f of [MANIFEST_FILE, TEXT_ENCODER_FILE, IMAGE_PROJECTION_FILE, VOCAB_FILE])
          await copyFile(join(dir, f), join(copy, f));
        const open = {
          [TEXT_ENCODER_FILE]: () => SentenceEncoder.open(copy, { providers: ['cpu'] }),
          [VOCAB_FILE]: () => SentenceEncoder.open(copy, { providers: ['cpu'] }),
          [IMAGE_PROJECTION_FILE]: () =>
            ImageProjection.open(copy, { providers: ['cpu'], ...(layers ? { layers } : {}) }),
        };
        for (const [file, opener] of Object.entries(open)) {
          const path = join(copy, file);
          const original = await readFile(path);
          const tampered = Uint8Array.from(original);
          tampered[tampered.length >> 1] = (tampered[tampered.length >> 1] as number) ^ 0x01;
          await writeFile(path, tampered);
          const error = await errorOf(opener);
          expect(error, file).toBeInstanceOf(ModelError);
          expect(error).toMatchObject({ code: 'sha256-mismatch', file: path });
          expect((error as Error).message).toContain(path);
          await rm(path);
          expect(await errorOf(opener)).toMatchObject({ code: 'missing', file: path });
          await writeFile(path, original);
        }
        // Restored, the copy opens again: the refusals were about the files, not the copy.
        await (await JointModel.open(copy, { providers: ['cpu'], ...(layers ? { layers } : {}) })).close();
      } finally {
        await rm(copy, { recursive: true, force: true });
      }
    });
  });
}
