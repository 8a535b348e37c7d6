import { existsSync } from 'node:fs';
import { ArgumentError } from '../errors.ts';
import { ClassTable, decodeTopClasses } from '../fusion/index.ts';
import type { ModelSet } from '../joint/index.ts';
import type { Catalog } from './catalog.ts';
import { haltPoint } from './halt.ts';
import { dequantize } from './quantize.ts';
import { type HnswParams, type SavedIndexState, VectorIndex } from './vector-index.ts';

interface IndexStateMeta extends SavedIndexState {
  model: string;
  dim: number;
  seq: number;
}

/** The model set whose rows serve search: its version (rows of other versions are not read) and dimension. */
type ServedSet = Pick<ModelSet, 'version' | 'dim'>;

/**
 * What search reads of the served model set: its vectors in the HNSW graph (rebuilt from the catalog whenever
 * the saved file is missing, stale or damaged, else replayed from the catalog's vector log) and every photo's
 * top classes in memory for the concept score (6 MB at 100k photos).
 */
export class SearchIndex {
  private vectors!: VectorIndex;
  private classTable = new ClassTable();

  constructor(
    private readonly catalog: Catalog,
    private readonly file: string,
    private readonly hnsw: HnswParams,
    private set: ServedSet,
    /** The photos of unplugged disks: kept in the catalog, not offered (they cannot be opened). */
    private readonly hidden: () => ReadonlySet<number> | null,
  ) {
    this.open();
    this.loadClasses();
  }

  /** The swap to another model set: its rows, already in the catalog, serve from here on. */
  serve(set: ServedSet): void {
    this.set = set;
    this.rebuild();
    this.loadClasses();
  }

  /** How many vectors the search index holds (equals the catalog's vectors of the served set). */
  get size(): number {
    return this.vectors.size;
  }

  /** The stored vector of a photo, or null before it is indexed. */
  get(imageId: number): Float32Array | null {
    const v = this.catalog.vector(imageId, this.set.version);
    return v ? dequantize(v.q, v.scale) : null;
  }

  nearest(
    query: Float32Array,
    k: number,
    allow?: (imageId: number) => boolean,
  ): Array<{ imageId: number; score: number }> {
    if (query.length !== this.set.dim)
      throw new ArgumentError('query', `expected ${this.set.dim} values, got ${query.length}`);
    const hidden = this.hidden();
    const filter = hidden ? (id: number) => !hidden.has(id) && (!allow || allow(id)) : allow;
    return this.vectors.search(query, k, filter).map((r) => ({ imageId: r.label, score: r.score }));
  }

  /**
   * Every photo's stored top classes, for the concept score. A row may outlive its photo until the library is
   * reopened (a walk's deletions do not pass through here): callers check ids against the catalog.
   */
  get classes(): Pick<ClassTable, 'view' | 'row' | 'size'> {
    return this.classTable;
  }

  /** A photo (re)indexed: the vector and classes the catalog now holds for it. */
  put(imageId: number, vector: Float32Array, top: Buffer): void {
    this.vectors.upsert(imageId, vector);
    this.classTable.set(imageId, decodeTopClasses(top));
  }

  setClasses(imageId: number, top: Buffer): void {
    this.classTable.set(imageId, decodeTopClasses(top));
  }

  /** A photo gone, failed or removed with its root. */
  remove(imageId: number): void {
    this.vectors.remove(imageId);
    this.classTable.delete(imageId);
  }

  /** Drops the vector only: the classes of a photo gone by a walk stay until reopening (see `classes`). */
  removeVector(imageId: number): void {
    this.vectors.remove(imageId);
  }

  /** Builds the index from the catalog's vectors. Public for tools; opening does it when needed. */
  rebuild(): void {
    const { version, dim } = this.set;
    const count = this.catalog.vectorCount(version);
    const index = VectorIndex.create(dim, Math.ceil(count * 1.25) + 64, this.hnsw);
    for (const v of this.catalog.vectors(version)) index.upsert(v.id, dequantize(v.q, v.scale));
    this.vectors = index;
    // The saved file (if any) no longer matches: forget it so a crash before the next save rebuilds again.
    this.catalog.setMeta('hnsw', 'null');
  }

  /** Saves the vector index atomically; on failure (IndexSaveError) the previous file and the catalog are intact. */
  save(): void {
    const seq = this.catalog.lastVectorSeq();
    // Nothing changed since the last save: rewriting (and re-reading) a 100 MB graph would be pure cost.
    const saved = this.savedState();
    if (saved && saved.seq === seq && saved.model === this.set.version && existsSync(this.file)) return;
    const written = this.vectors.save(this.file);
    haltPoint('saved');
    const meta: IndexStateMeta = { ...written, model: this.set.version, dim: this.set.dim, seq };
    this.catalog.transaction(() => {
      this.catalog.setMeta('hnsw', JSON.stringify(meta));
      this.catalog.pruneVectorLog(seq);
    });
  }

  /** Loads the saved index and replays the vector changes made since it was saved; rebuilds when it can't. */
  private open(): void {
    const meta = this.savedState();
    const { version, dim } = this.set;
    if (meta && meta.model === version && meta.dim === dim && existsSync(this.file)) {
      try {
        const index = VectorIndex.load(this.file, dim, meta, this.hnsw);
        for (const id of this.catalog.vectorChangesSince(meta.seq)) {
          const v = this.catalog.vector(id, version);
          if (v) index.upsert(id, dequantize(v.q, v.scale));
          else index.remove(id);
        }
        // Tombstones still cost search time and file space; past a quarter of the graph, a rebuild is cheaper.
        const tombstones = index.deletedCount <= Math.max(1000, index.size / 4);
        if (index.size === this.catalog.vectorCount(version) && tombstones) {
          this.vectors = index;
          return;
        }
      } catch {
        // Missing, stale, corrupt or foreign: the catalog has every vector, so rebuild.
      }
    }
    this.rebuild();
  }

  private loadClasses(): void {
    this.classTable = new ClassTable();
    for (const row of this.catalog.classRows(this.set.version))
      this.classTable.set(row.id, decodeTopClasses(row.top));
  }

  private savedState(): IndexStateMeta | null {
    try {
      return JSON.parse(this.catalog.meta('hnsw') ?? 'null') as IndexStateMeta | null;
    } catch {
      return null;
    }
  }
}
