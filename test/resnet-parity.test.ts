import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CnnManifest,
  CnnSession,
  cnnModelPath,
  imagenetClassOffset,
  RESNET50_PACKAGE,
  verifiedCnn,
} from '../src-main/engine/cnn/index.ts';
import { projectRoot } from '../src-main/engine/paths.ts';
import { referenceDir, resnetBuilt, skipNote } from './helpers/shared.ts';

/** Written by training/resnet50_reference.py from TensorFlow's own Keras ResNet50 with the package's weights. */
const fixtureDir = join(projectRoot, 'test', 'fixtures', 'resnet50-keras');
interface Reference {
  model_json_sha256: string;
  pooled: { shape: [number, number] };
  layers: { name: string; kind: string; offset: number; channels: number }[];
  photos: { photo: string; top5: [number, number][] }[];
}
const reference = JSON.parse(readFileSync(join(fixtureDir, 'reference.json'), 'utf8')) as Reference;

/** float16 little-endian to float32 (the fixture is stored at half precision to stay small). */
function readHalf(file: string): Float32Array {
  const b = readFileSync(file);
  const out = new Float32Array(b.length / 2);
  for (let i = 0; i < out.length; i++) {
    const h = b.readUInt16LE(2 * i);
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    out[i] = sign * (exp === 0 ? frac * 2 ** -24 : (1 + frac / 1024) * 2 ** (exp - 15));
  }
  return out;
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

describe('the ResNet-50 reference fixture', () => {
  it('comes from the pinned package model.json and covers 53 layers of the 10 photos', () => {
    const modelJson = RESNET50_PACKAGE.files.find((f) => f.name === 'model.json');
    expect(reference.model_json_sha256).toBe(modelJson?.sha256);
    expect(reference.photos).toHaveLength(10);
    expect(reference.layers).toHaveLength(53);
    const dim = reference.layers.reduce((sum, l) => sum + l.channels, 0);
    expect(reference.pooled.shape).toEqual([10, dim]);
    expect(readFileSync(join(fixtureDir, 'pooled.f16')).length).toBe(10 * dim * 2);
  });
});

describe.skipIf(!referenceDir || !resnetBuilt)(
  `ResNet-50 conversion vs TensorFlow's Keras${skipNote({ shared: true, resnet: true })}`,
  () => {
    const expectedDir = join(referenceDir as string, 'expected');
    const input = (photo: string) => new Uint8Array(readFileSync(join(expectedDir, `${photo}.input.u8`)));
    const pooled = readHalf(join(fixtureDir, 'pooled.f16'));
    const dim = reference.pooled.shape[1];
    let manifest: CnnManifest;
    let session: CnnSession;

    beforeAll(async () => {
      manifest = await verifiedCnn('float', undefined, 'resnet50');
      session = await CnnSession.open(cnnModelPath('float', undefined, 'resnet50'), manifest, { threads: 1 });
    });
    afterAll(async () => {
      await session?.close();
    });

    it('the layer map is the 53 convs: 49 pooled after their ReLU or as block outputs, 4 shortcuts; 26,560-d', () => {
      expect(manifest.layers.map((l) => [l.name, l.kind, l.offset, l.channels])).toEqual(
        reference.layers.map((l) => [l.name, l.kind, l.offset, l.channels]),
      );
      const count = (kind: string) => manifest.layers.filter((l) => l.kind === kind).length;
      expect([count('conv'), count('block'), count('shortcut')]).toEqual([33, 16, 4]);
      expect(manifest.fneDim).toBe(26560);
      expect(manifest.oneLayer).toMatchObject({ name: 'res5c_branch2c', kind: 'block', channels: 2048 });
      expect(manifest.classes).toBe(1000);
      expect(imagenetClassOffset(manifest)).toBe(0);
    });

    it('same top-1 as Keras on all 10 photos; every layer pooled with cosine >= 0.999', async () => {
      let worst = { cosine: 1, where: '' };
      for (const [i, photo] of reference.photos.entries()) {
        const out = await session.run(input(photo.photo), 1);
        expect(argmax(out.probs), photo.photo).toBe(photo.top5[0]?.[0]);
        const ref = pooled.subarray(i * dim, (i + 1) * dim);
        for (const l of manifest.layers) {
          const c = cosine(
            out.fneRaw.subarray(l.offset, l.offset + l.channels),
            ref.subarray(l.offset, l.offset + l.channels),
          );
          if (c < worst.cosine) worst = { cosine: c, where: `${l.name} on ${photo.photo}` };
        }
        const { offset, channels } = manifest.oneLayer;
        expect(out.oneLayer).toEqual(out.fneRaw.subarray(offset, offset + channels));
      }
      console.log(
        `worst layer vs Keras: ${worst.where}, 1 - cosine = ${(1 - worst.cosine).toExponential(2)}`,
      );
      expect(worst.cosine, worst.where).toBeGreaterThanOrEqual(0.999);
    });

    it('probabilities agree with Keras to 1e-3 on the top-5', async () => {
      const photo = reference.photos[0] as Reference['photos'][number];
      const out = await session.run(input(photo.photo), 1);
      for (const [k, p] of photo.top5) expect(Math.abs((out.probs[k] as number) - p)).toBeLessThan(1e-3);
    });

    it('the batch dimension is dynamic and a batch equals its images run alone', async () => {
      const photos = reference.photos.slice(0, 2).map((p) => input(p.photo));
      const frame = 224 * 224 * 3;
      const batch = new Uint8Array(photos.length * frame);
      for (const [i, p] of photos.entries()) batch.set(p, i * frame);
      const together = await session.run(batch, photos.length);
      expect(together.probs.length).toBe(2 * 1000);
      for (const [i, p] of photos.entries()) {
        const alone = await session.run(p, 1);
        const row = together.fneRaw.subarray(i * dim, (i + 1) * dim);
        const diff = Math.max(...row.map((v, j) => Math.abs(v - (alone.fneRaw[j] as number))));
        expect(diff).toBeLessThan(1e-3);
      }
    });
  },
);
