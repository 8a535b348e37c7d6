import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { JointModel, jointModelsDir } from '../../src-main/engine/joint/index.ts';
import { cacheDir } from '../../src-main/engine/paths.ts';

/** A deterministic pseudo-random unit vector (Gaussian via mulberry32 + Box-Muller), so failures reproduce. */
export function unitVector(dim: number, seed: number): Float32Array {
  // Deterministic pseudo-random (mulberry32) so failures reproduce.
  let a = seed >>> 0;
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const v = new Float32Array(dim);
  let n = 0;
  for (let i = 0; i < dim; i++) {
    const x = Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
    v[i] = x;
    n += x * x;
  }
  for (let i = 0; i < dim; i++) v[i] = (v[i] as number) / Math.sqrt(n);
  return v;
}

/**
 * Real joint-space vectors: the prepared Flickr8k FNEs (npm run data:prepare) through the shipped FNE model's
 * image projection, plus sentence vectors of some of their captions as queries. Undefined when the prepared
 * data is absent. Cached under .cache/ (they take seconds to compute).
 */
export async function flickrJointVectors(
  queries = 200,
): Promise<{ images: Float32Array[]; sentences: Float32Array[] } | undefined> {
  const prepared = join(cacheDir, 'data', 'flickr8k-v2');
  if (!existsSync(join(prepared, 'fne.i8'))) return undefined;
  const cache = join(cacheDir, 'library', `flickr8k-joint-${queries}.bin`);
  const model = await JointModel.open(join(jointModelsDir, 'fne'));
  try {
    const dim = model.dim;
    let flat: Float32Array;
    if (existsSync(cache)) {
      const bytes = readFileSync(cache);
      flat = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    } else {
      const meta = JSON.parse(readFileSync(join(prepared, 'meta.json'), 'utf8')) as {
        images: number;
        fneDim: number;
      };
      const fne = readFileSync(join(prepared, 'fne.i8'));
      const inputs = Array.from({ length: meta.images }, (_, i) => ({
        fne: new Int8Array(fne.buffer, fne.byteOffset + i * meta.fneDim, meta.fneDim),
      }));
      const imageVectors = await model.embedImages(inputs);
      const captions = readFileSync(join(prepared, 'captions.tsv'), 'utf8')
        .split('\n')
        .slice(1)
        .filter(Boolean)
        .map((line) => line.split('\t')[3] as string);
      const step = Math.floor(captions.length / queries);
      const texts = Array.from({ length: queries }, (_, i) => captions[i * step] as string);
      const sentenceVectors = await model.encodeSentences(texts);
      flat = new Float32Array(imageVectors.length + sentenceVectors.length);
      flat.set(imageVectors);
      flat.set(sentenceVectors, imageVectors.length);
      mkdirSync(dirname(cache), { recursive: true });
      writeFileSync(cache, Buffer.from(flat.buffer, flat.byteOffset, flat.byteLength));
    }
    const rows = flat.length / dim;
    const all = Array.from({ length: rows }, (_, i) => flat.subarray(i * dim, (i + 1) * dim));
    return { images: all.slice(0, rows - queries), sentences: all.slice(rows - queries) };
  } finally {
    await model.close();
  }
}

/** Exact top-k by dot product (the vectors are unit length): the ground truth for recall. */
export function bruteForceTopK(data: readonly Float32Array[], query: Float32Array, k: number): number[] {
  const scored: Array<[number, number]> = data.map((v, i) => {
    let d = 0;
    for (let j = 0; j < v.length; j++) d += (v[j] as number) * (query[j] as number);
    return [d, i];
  });
  scored.sort((a, b) => b[0] - a[0]);
  return scored.slice(0, k).map((s) => s[1]);
}
