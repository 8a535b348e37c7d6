import { createHash } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import hnswlib from 'hnswlib-node';
import { fileErrorClass } from '../errors.ts';
import { haltPoint } from './halt.ts';

const { HierarchicalNSW } = hnswlib;
type Hnsw = InstanceType<typeof HierarchicalNSW>;

export interface HnswParams {
  /** Graph degree. */
  m: number;
  efConstruction: number;
  /** Candidate list size at query time (raised to k when k is larger). */
  efSearch: number;
}

/**
 * Chosen by measurement (docs/BENCHMARKS.md, ## Library) on the 8,091 Flickr8k photos' real joint vectors,
 * queried by caption sentences and by photos: recall@10 vs brute force was 0.956 / 0.982 / 0.997 / 0.9998 at
 * efSearch 16 / 32 / 64 / 128 with M 16, efConstruction 200 (M 24 gained < 0.002 for a bigger file; M 12 lost
 * 0.003). M 16 keeps the file near 2.2 KB per photo, inside the 4 KB budget. Random 512-d unit vectors (the
 * synthetic latency benchmark) are far harder and reach much lower recall at the same settings.
 */
export const DEFAULT_HNSW: HnswParams = { m: 16, efConstruction: 200, efSearch: 64 };

/** Saving the vector index failed; the previous file is untouched and the catalog still holds every vector. */
export class IndexSaveError extends fileErrorClass('index-save-failed') {}

/** What the catalog remembers about the saved file, to trust it on the next open. */
export interface SavedIndexState {
  bytes: number;
  sha256: string;
  /** Labels marked deleted in the file (hnswlib keeps them as tombstones). */
  deleted: number[];
}

/**
 * An HNSW graph over unit vectors (cosine) keyed by image id. Deletions are tombstones (markDelete); the
 * capacity grows as photos arrive. It is a cache of the catalog: anything wrong with it means a rebuild.
 */
export class VectorIndex {
  private readonly live = new Set<number>();
  private readonly tombstones = new Set<number>();

  /** This index's own copy: efSearch may be tuned per index without touching DEFAULT_HNSW. */
  readonly params: HnswParams;

  private constructor(
    private index: Hnsw,
    readonly dim: number,
    params: HnswParams,
  ) {
    this.params = { ...params };
    index.setEf(params.efSearch);
  }

  static create(dim: number, capacity: number, params: HnswParams = DEFAULT_HNSW): VectorIndex {
    const index = new HierarchicalNSW('cosine', dim);
    index.initIndex({
      maxElements: Math.max(capacity, 64),
      m: params.m,
      efConstruction: params.efConstruction,
    });
    return new VectorIndex(index, dim, params);
  }

  /**
   * Loads a saved file, trusting it only when its size and sha256 are what the catalog recorded at save
   * time (so a truncated or foreign file never reaches hnswlib's reader). Throws on any mismatch.
   */
  static load(
    file: string,
    dim: number,
    state: SavedIndexState,
    params: HnswParams = DEFAULT_HNSW,
  ): VectorIndex {
    const digest = fileDigest(file);
    if (digest.bytes !== state.bytes || digest.sha256 !== state.sha256) {
      throw new Error(`${file}: size or checksum differs from the one recorded at save`);
    }
    const index = new HierarchicalNSW('cosine', dim);
    index.readIndexSync(file);
    if (index.getNumDimensions() !== dim)
      throw new Error(`${file}: dimension ${index.getNumDimensions()} ≠ ${dim}`);
    const loaded = new VectorIndex(index, dim, params);
    for (const label of state.deleted) loaded.tombstones.add(label);
    for (const label of index.getIdsList()) if (!loaded.tombstones.has(label)) loaded.live.add(label);
    return loaded;
  }

  get size(): number {
    return this.live.size;
  }

  get deletedCount(): number {
    return this.tombstones.size;
  }

  has(label: number): boolean {
    return this.live.has(label);
  }

  labels(): IterableIterator<number> {
    return this.live.values();
  }

  upsert(label: number, vector: Float32Array): void {
    if (vector.length !== this.dim)
      throw new Error(`vector of ${vector.length} values, index holds ${this.dim}`);
    if (this.index.getCurrentCount() >= this.index.getMaxElements()) {
      this.index.resizeIndex(Math.ceil(this.index.getMaxElements() * 1.5) + 64);
    }
    // hnswlib updates an existing label in place (and un-deletes a tombstone).
    this.index.addPoint(Array.from(vector), label);
    this.live.add(label);
    this.tombstones.delete(label);
  }

  remove(label: number): void {
    if (!this.live.has(label)) return;
    this.index.markDelete(label);
    this.live.delete(label);
    this.tombstones.add(label);
  }

  /** Nearest by cosine; `allow` is applied inside hnswlib's search, so k allowed results come back when they exist. */
  search(
    query: Float32Array,
    k: number,
    allow?: (label: number) => boolean,
  ): Array<{ label: number; score: number }> {
    const n = Math.min(k, this.live.size);
    if (n <= 0) return [];
    this.index.setEf(Math.max(this.params.efSearch, n));
    const result = allow
      ? this.index.searchKnn(Array.from(query), n, allow)
      : this.index.searchKnn(Array.from(query), n);
    return result.neighbors.map((label, i) => ({ label, score: 1 - (result.distances[i] as number) }));
  }

  /**
   * Atomic save: write a temp file beside the target, check it reads back whole, fsync, rename over the
   * target, fsync the folder. hnswlib's writer ignores write errors (a full disk leaves a short file), so
   * the read-back is what catches them; on any failure the old file stays as it was.
   */
  save(file: string): SavedIndexState {
    const tmp = `${file}.tmp`;
    try {
      this.index.writeIndexSync(tmp);
      const fd = openSync(tmp, 'r');
      try {
        if (!fstatSync(fd).isFile()) throw new Error(`${tmp} is not a regular file`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      const check = new HierarchicalNSW('cosine', this.dim);
      check.readIndexSync(tmp);
      if (check.getCurrentCount() !== this.index.getCurrentCount()) {
        throw new Error(`wrote ${check.getCurrentCount()} of ${this.index.getCurrentCount()} vectors`);
      }
      const digest = fileDigest(tmp);
      haltPoint('saving');
      renameSync(tmp, file);
      syncDir(dirname(file));
      return { ...digest, deleted: [...this.tombstones] };
    } catch (error) {
      rmSync(tmp, { force: true });
      const reason = error instanceof Error ? error.message : String(error);
      throw new IndexSaveError(
        file,
        `could not save the vector index (${reason}); the previous file is intact and the catalog holds every vector (is the disk full?)`,
        { cause: error },
      );
    }
  }
}

function fileDigest(file: string): { bytes: number; sha256: string } {
  const hash = createHash('sha256');
  const fd = openSync(file, 'r');
  try {
    if (!fstatSync(fd).isFile()) throw new Error(`${file} is not a regular file`);
    const buffer = Buffer.allocUnsafe(1 << 20);
    let bytes = 0;
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) break;
      hash.update(buffer.subarray(0, n));
      bytes += n;
    }
    return { bytes, sha256: hash.digest('hex') };
  } finally {
    closeSync(fd);
  }
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Windows cannot open a folder for fsync; its rename is already durable enough there.
  }
}
