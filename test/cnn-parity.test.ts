import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CNN_MODES,
  type CnnManifest,
  type CnnMode,
  CnnSession,
  cnnModelPath,
  verifiedCnn,
} from '../src-main/engine/cnn/index.ts';
import { cnnBuilt, referenceDir, skipNote } from './helpers/shared.ts';

interface Expected {
  photo: string;
  top1: number;
  top5: number[];
}

function readReference(dir: string) {
  const tsv = (file: string) =>
    readFileSync(join(dir, 'expected', file), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => line.split('\t'));
  const layers = tsv('layers.tsv').map(([, op, tensor, , , channels, offset]) => ({
    op: op as string,
    tensor: tensor as string,
    channels: Number(channels),
    offset: Number(offset),
  }));
  const photos: Expected[] = tsv('expected.tsv').map(([photo, , top1, , , top5]) => ({
    photo: photo as string,
    top1: Number(top1),
    top5: (top5 as string).split(' ').map((p) => Number(p.split(':')[0])),
  }));
  const stem = (photo: string) => photo.replace(/\.[^.]+$/, '');
  const input = (photo: string) =>
    new Uint8Array(readFileSync(join(dir, 'expected', `${stem(photo)}.input.u8`)));
  const pooled = (photo: string) => {
    const b = readFileSync(join(dir, 'expected', `${stem(photo)}.pooled.f32`));
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
  };
  return { layers, photos, input, pooled };
}

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += (a[i] as number) * (b[i] as number);
    aa += (a[i] as number) ** 2;
    bb += (b[i] as number) ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

const argmax = (p: Float32Array) => p.indexOf(Math.max(...p));

describe.skipIf(!referenceDir || !cnnBuilt)(
  `CNN conversion vs the TFLite interpreter${skipNote({ shared: true, cnn: true })}`,
  () => {
    const ref = readReference(referenceDir as string);
    const sessions = new Map<CnnMode, { session: CnnSession; manifest: CnnManifest }>();

    beforeAll(async () => {
      for (const mode of CNN_MODES) {
        const manifest = await verifiedCnn(mode);
        sessions.set(mode, {
          manifest,
          session: await CnnSession.open(cnnModelPath(mode), manifest, { threads: 1 }),
        });
      }
    });
    afterAll(async () => {
      for (const { session } of sessions.values()) await session.close();
    });

    it.each(CNN_MODES)(
      '%s: the layer map is the 52 conv layers of layers.tsv, 17,056-d, one-layer = Conv_1',
      (mode) => {
        const { manifest } = sessions.get(mode) as { manifest: CnnManifest };
        const expected = ref.layers.filter((l) => !l.tensor.includes('Logits'));
        expect(manifest.layers.map((l) => [l.name, l.channels, l.offset])).toEqual(
          expected.map((l) => [l.tensor, l.channels, l.offset]),
        );
        expect(manifest.layers.map((l) => l.kind)).toEqual(
          expected.map((l) => (l.op === 'CONV_2D' ? 'conv' : 'depthwise')),
        );
        expect(manifest.fneDim).toBe(17056);
        expect(manifest.oneLayer).toMatchObject({
          name: 'MobilenetV2/Conv_1/Relu6',
          channels: 1280,
          offset: 15776,
        });
      },
    );

    /** Per photo: top-1, and the worst per-layer agreement with the interpreter's pooled outputs. */
    async function compare(mode: CnnMode) {
      const { session, manifest } = sessions.get(mode) as { session: CnnSession; manifest: CnnManifest };
      const rows = [];
      for (const photo of ref.photos) {
        const out = await session.run(ref.input(photo.photo), 1);
        const pooled = ref.pooled(photo.photo);
        const layers = manifest.layers.map((l) => {
          const a = out.fneRaw.subarray(l.offset, l.offset + l.channels);
          const b = pooled.subarray(l.offset, l.offset + l.channels);
          const steps = Math.max(...a.map((v, i) => Math.abs(v - (b[i] as number)))) / l.scale;
          return { name: l.name, cosine: cosine(a, b), steps };
        });
        rows.push({
          photo,
          top1: argmax(out.probs),
          cosine: cosine(out.fneRaw, pooled.subarray(0, manifest.fneDim)),
          worstCosine: layers.reduce((w, l) => (l.cosine < w.cosine ? l : w)),
          worstSteps: layers.reduce((w, l) => (l.steps > w.steps ? l : w)),
          oneLayerExact: out.oneLayer.every((v, i) => v === out.fneRaw[manifest.oneLayer.offset + i]),
        });
      }
      return rows;
    }

    it('qdq: top-1 equals the interpreter on all 10 photos; every pooled layer within 2 quantization steps', async () => {
      const rows = await compare('qdq');
      for (const r of rows) {
        expect(r.top1, r.photo.photo).toBe(r.photo.top1);
        expect(r.worstSteps.steps, `${r.photo.photo} ${r.worstSteps.name}`).toBeLessThanOrEqual(2);
        expect(r.oneLayerExact).toBe(true);
      }
      const worst = rows.reduce((w, r) => (r.worstSteps.steps > w.worstSteps.steps ? r : w));
      console.log(
        `qdq worst layer: ${worst.worstSteps.name} on ${worst.photo.photo}: ${worst.worstSteps.steps.toFixed(3)} steps`,
      );
    });

    it('float: top-1 on >= 9 of 10 (a flip only to the reference top-2); FNE cosine >= 0.99; every layer >= 0.95', async () => {
      const rows = await compare('float');
      const matches = rows.filter((r) => r.top1 === r.photo.top1).length;
      expect(matches).toBeGreaterThanOrEqual(9);
      for (const r of rows) {
        expect(r.photo.top5.slice(0, 2), r.photo.photo).toContain(r.top1);
        expect(r.cosine, r.photo.photo).toBeGreaterThanOrEqual(0.99);
        expect(r.worstCosine.cosine, `${r.photo.photo} ${r.worstCosine.name}`).toBeGreaterThanOrEqual(0.95);
      }
      const worst = rows.reduce((w, r) => (r.worstCosine.cosine < w.worstCosine.cosine ? r : w));
      console.log(
        `float worst layer: ${worst.worstCosine.name} on ${worst.photo.photo}: cosine ${worst.worstCosine.cosine.toFixed(4)}`,
      );
    });

    it.each(CNN_MODES)(
      '%s: the batch dimension is dynamic and a batch equals its images run alone',
      async (mode) => {
        const { session, manifest } = sessions.get(mode) as { session: CnnSession; manifest: CnnManifest };
        const photos = ref.photos.slice(0, 3).map((p) => ref.input(p.photo));
        const frame = 224 * 224 * 3;
        const batch = new Uint8Array(photos.length * frame);
        for (const [i, p] of photos.entries()) batch.set(p, i * frame);
        const together = await session.run(batch, photos.length);
        expect(together.fneRaw.length).toBe(3 * manifest.fneDim);
        for (const [i, p] of photos.entries()) {
          const alone = await session.run(p, 1);
          const row = together.fneRaw.subarray(i * manifest.fneDim, (i + 1) * manifest.fneDim);
          const diff = Math.max(...row.map((v, j) => Math.abs(v - (alone.fneRaw[j] as number))));
          expect(diff).toBeLessThan(1e-4);
        }
      },
    );

    it('run() refuses pixels of the wrong size, naming what it expected', async () => {
      const { session } = sessions.get('qdq') as { session: CnnSession };
      await expect(session.run(new Uint8Array(100), 1)).rejects.toThrow(
        /expected 1x224x224x3 bytes, got 100/,
      );
    });
  },
);
