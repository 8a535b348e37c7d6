import { execFile } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_HNSW, IndexSaveError, VectorIndex } from '../src-main/engine/library/index.ts';
import { tempDir } from './helpers/library-fixtures.ts';
import { bruteForceTopK, flickrJointVectors, unitVector } from './helpers/library-vectors.ts';

const real = await flickrJointVectors(200);

describe(`HNSW recall on the Flickr8k joint vectors${real ? '' : ' [skipped: .cache/data/flickr8k-v2 is absent; npm run data:prepare makes it]'}`, () => {
  it.skipIf(!real)(
    'finds ≥ 98 % of the exact top 10 at the default parameters, for sentences and photos',
    () => {
      const { images, sentences } = real as NonNullable<typeof real>;
      const index = VectorIndex.create(images[0]?.length as number, 1000, DEFAULT_HNSW);
      for (const [i, v] of images.entries()) index.upsert(i, v);
      const recall = (queries: Float32Array[]) => {
        let hits = 0;
        for (const q of queries) {
          const truth = new Set(bruteForceTopK(images, q, 10));
          hits += index.search(q, 10).filter((r) => truth.has(r.label)).length;
        }
        return hits / (queries.length * 10);
      };
      const bySentence = recall(sentences);
      const byPhoto = recall(images.filter((_, i) => i % 40 === 0));
      expect(bySentence).toBeGreaterThanOrEqual(0.98);
      expect(byPhoto).toBeGreaterThanOrEqual(0.98);
    },
  );
});

describe('vector index', () => {
  const dim = 32;
  const vectors = Array.from({ length: 400 }, (_, i) => unitVector(dim, i + 1));
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir('vectors');
  });
  afterEach(() => tmp.cleanup());

  const build = () => {
    // Capacity far below the count: it has to grow.
    const index = VectorIndex.create(dim, 10);
    for (const [i, v] of vectors.entries()) index.upsert(i + 1, v);
    return index;
  };

  it('grows past its capacity, deletes by tombstone, and applies filters inside the search', () => {
    const index = build();
    expect(index.size).toBe(400);
    const q = vectors[7] as Float32Array;
    expect(index.search(q, 1)[0]).toMatchObject({ label: 8 });
    expect(index.search(q, 1)[0]?.score).toBeCloseTo(1, 5);
    index.remove(8);
    expect(index.size).toBe(399);
    expect(index.search(q, 50).map((r) => r.label)).not.toContain(8);
    index.upsert(8, q);
    expect(index.search(q, 1)[0]?.label).toBe(8);
    // A filter that admits one label in four still yields k results, all admitted.
    const even = index.search(q, 20, (label) => label % 4 === 0);
    expect(even).toHaveLength(20);
    expect(even.every((r) => r.label % 4 === 0)).toBe(true);
    // Scores come best first.
    const scores = index.search(q, 30).map((r) => r.score);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    expect(index.search(q, 10_000)).toHaveLength(400);
  });

  it('saves atomically and loads only a file whose size and checksum match', () => {
    const index = build();
    index.remove(3);
    const file = join(tmp.dir, 'vectors.hnsw');
    const state = index.save(file);
    expect(state.deleted).toEqual([3]);
    expect(existsSync(`${file}.tmp`)).toBe(false);
    const loaded = VectorIndex.load(file, dim, state);
    expect(loaded.size).toBe(399);
    expect(loaded.has(3)).toBe(false);
    const q = vectors[100] as Float32Array;
    expect(loaded.search(q, 10)).toEqual(index.search(q, 10));
    // One flipped byte: refused before hnswlib reads it.
    const bytes = readFileSync(file);
    bytes[bytes.length - 100] = (bytes[bytes.length - 100] as number) ^ 0xff;
    writeFileSync(file, bytes);
    expect(() => VectorIndex.load(file, dim, state)).toThrow(/checksum/);
    writeFileSync(file, bytes.subarray(0, 1000));
    expect(() => VectorIndex.load(file, dim, state)).toThrow(/checksum/);
  });

  it('leaves the previous file intact when the disk is full during a save', () => {
    const index = build();
    const file = join(tmp.dir, 'vectors.hnsw');
    index.save(file);
    const before = readFileSync(file);
    index.upsert(1000, unitVector(dim, 1000));
    // The temp file lands on /dev/full: every write fails with ENOSPC (which hnswlib's writer ignores).
    symlinkSync('/dev/full', `${file}.tmp`);
    let error: unknown;
    try {
      index.save(file);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(IndexSaveError);
    expect((error as IndexSaveError).code).toBe('index-save-failed');
    expect((error as IndexSaveError).message).toMatch(/previous file is intact/);
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(() => lstatSync(`${file}.tmp`)).toThrow(/ENOENT/);
    // The next save (space back) goes through.
    const state = index.save(file);
    expect(VectorIndex.load(file, dim, state).has(1000)).toBe(true);
  });
});

describe('vector index save on a full disk (a write that fails mid-file)', () => {
  it('reports the failure and keeps the previous file byte for byte', async () => {
    const tmp = tempDir('fsize');
    try {
      const child = fileURLToPath(new URL('./helpers/library-save-child.ts', import.meta.url));
      const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
      // 100 KiB: the first save (~30 KB) fits, the second (~1 MB) is cut off by EFBIG part way.
      const { stdout } = await promisify(execFile)('bash', [
        '-c',
        `trap '' XFSZ; ulimit -f 100; exec "${process.execPath}" --import "${tsx}" "${child}" "${tmp.dir}"`,
      ]);
      const result = JSON.parse(stdout.trim().split('\n').at(-1) as string);
      expect(result.error?.code).toBe('index-save-failed');
      expect(result.intact).toBe(true);
      expect(result.firstBytes).toBeLessThan(100 * 1024);
      expect(result.reloadedSize).toBe(100);
      expect(existsSync(join(tmp.dir, 'vectors.hnsw.tmp'))).toBe(false);
    } finally {
      tmp.cleanup();
    }
  });
});
