import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { RootInfo } from '../../contract/index.ts';
import { makeDirSync } from '../files.ts';
import type { FneExtractor } from '../fne/index.ts';
import {
  DEFAULT_MODEL_SET,
  findModelSet,
  type JointModel,
  listModelSets,
  type ModelSet,
} from '../joint/index.ts';
import { Catalog } from './catalog.ts';
import { Indexer, type IndexerOptions } from './indexer.ts';
import { acquireLock } from './lock.ts';
import { ModelChoice, type ModelSetStatus, modelSetStatus } from './model-choice.ts';
import { offlineReason, Roots } from './roots.ts';
import { SearchIndex } from './search-index.ts';
import { DEFAULT_HNSW, type HnswParams } from './vector-index.ts';
import { Watcher } from './watcher.ts';

export const CATALOG_FILE = 'catalog.db';
export const INDEX_FILE = 'vectors.hnsw';

export interface LibraryOptions extends IndexerOptions {
  /** The library folder: catalog.db, vectors.hnsw and the lock live here (created when missing). */
  dir: string;
  /**
   * The model set to move the library to (joint/model-set.ts), kept as the library's choice; default: the one
   * chosen before, else DEFAULT_MODEL_SET. Until its vectors are made (by `index`), the old set's serve search.
   */
  modelSet?: string;
  /** Already open models (tests share them), used for the set or backbone they are of. Opened lazily otherwise. */
  model?: JointModel;
  extractor?: FneExtractor;
  hnsw?: Partial<HnswParams>;
}

/**
 * A photo library: the catalog (SQLite, the source of truth), read and written directly; the search index
 * (HNSW vectors and top classes of the served model set); the roots; the indexer; the watcher; and the model
 * set choice. One process holds a library at a time (a pid lock file).
 */
export class Library {
  readonly search: SearchIndex;
  readonly roots: Roots;
  readonly indexer: Indexer;
  readonly watcher: Watcher;

  private constructor(
    readonly dir: string,
    /** The source of truth: rooms read and write photos, descriptions and filters through it directly. */
    readonly catalog: Catalog,
    private readonly release: () => void,
    private readonly choice: ModelChoice,
    options: LibraryOptions,
  ) {
    const hnsw: HnswParams = { ...DEFAULT_HNSW, ...options.hnsw };
    // The roots hide the photos of unplugged disks from search; search drops a removed root's photos.
    this.search = new SearchIndex(catalog, join(dir, INDEX_FILE), hnsw, choice.active, () =>
      this.roots.hiddenImageIds(),
    );
    this.roots = new Roots(catalog, this.search, () => void this.watcher.rewatch());
    this.indexer = new Indexer(catalog, this.search, this.roots, choice, options);
    this.watcher = new Watcher(catalog, this.roots, this.indexer);
  }

  static async open(options: LibraryOptions): Promise<Library> {
    const dir = resolve(options.dir);
    const sets = await listModelSets();
    // A bad name is refused before the library is touched.
    const requested = options.modelSet === undefined ? undefined : findModelSet(sets, options.modelSet);
    makeDirSync(dir);
    const release = acquireLock(dir);
    let catalog: Catalog | undefined;
    try {
      catalog = new Catalog(join(dir, CATALOG_FILE));
      if (requested) catalog.setMeta('modelSet', requested.name);
      const chosen = catalog.meta('modelSet');
      // A chosen set no longer installed gives way to the default rather than lock the person out.
      const target =
        requested ?? sets.find((s) => s.name === chosen) ?? findModelSet(sets, DEFAULT_MODEL_SET);
      // Before model sets were recorded, the vectors were of the one model the library was opened with.
      const present = catalog.vectorModels();
      const served =
        catalog.meta('vectors') ?? (present.includes(target.version) ? target.version : present[0]);
      // The served set retrained or removed: its vectors cannot answer any query, so they are made again.
      const active = sets.find((s) => s.version === served) ?? target;
      const choice = new ModelChoice(catalog, sets, active, options);
      choice.choose(target);
      return new Library(dir, catalog, release, choice, options);
    } catch (error) {
      catalog?.close();
      release();
      throw error;
    }
  }

  /** Manifest name + sha256 of its manifest.json of the set serving search: rows of other versions are not used. */
  get modelVersion(): string {
    return this.choice.active.version;
  }

  /** Photos of the served set: indexed (with its vector), failed, pending. */
  counts(): { total: number; indexed: number; failed: number; pending: number } {
    return this.catalog.counts(this.modelVersion);
  }

  /**
   * Moves the library to the model set of this name (kept as its choice): the next `index` makes the set's
   * vectors and classes beside the served ones, then swaps (see Indexer.switchAll). The served set's name cancels
   * a switch under way; its rows are dropped.
   */
  chooseModelSet(name: string): void {
    const set = findModelSet(this.choice.sets, name);
    this.catalog.setMeta('modelSet', set.name);
    this.choice.choose(set);
  }

  /** The served set, the chosen one, how many indexed photos still lack the chosen set's vector, every set. */
  modelSets(): ModelSetStatus {
    return this.choice.status();
  }

  /** The joint model and CNN of the set serving search (opened on first use). */
  async activeModels(): Promise<{ model: JointModel; extractor: FneExtractor }> {
    const [model, extractor] = await Promise.all([this.choice.model(), this.choice.extractor()]);
    return { model, extractor };
  }

  /**
   * Called with the chosen set's models once its vectors are all made, before the swap: what it resolves to
   * runs in the same step as the swap, so no query is answered by one set's text side and the other's vectors.
   */
  onSwitch(prepare: (model: JointModel, extractor: FneExtractor) => Promise<() => void>): void {
    this.choice.switched = prepare;
  }

  /**
   * What `status` shows of a library that cannot be written (a read-only disk), changing nothing and taking no
   * lock. The catalog is read from a temporary copy: SQLite cannot open a WAL database where it cannot make
   * its shared-memory file, even read-only.
   */
  static async readOnlyStatus(options: { dir: string }): Promise<{
    roots: RootInfo[];
    counts: { total: number; indexed: number; failed: number; pending: number };
    failures: Array<{ path: string; reason: string }>;
    active: ModelSet;
    modelSets: ModelSetStatus;
  }> {
    const dir = resolve(options.dir);
    const sets = await listModelSets();
    const fallback = findModelSet(sets, DEFAULT_MODEL_SET);
    const temp = await mkdtemp(join(tmpdir(), 'sagasu-status-'));
    try {
      for (const suffix of ['', '-wal']) {
        try {
          await copyFile(join(dir, CATALOG_FILE + suffix), join(temp, CATALOG_FILE + suffix));
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
          // No catalog: a library that was never used.
          if (suffix === '') {
            const counts = { total: 0, indexed: 0, failed: 0, pending: 0 };
            const modelSets = modelSetStatus(null, sets, fallback, fallback);
            return { roots: [], counts, failures: [], active: fallback, modelSets };
          }
        }
      }
      const catalog = new Catalog(join(temp, CATALOG_FILE));
      try {
        const active = sets.find((s) => s.version === catalog.meta('vectors')) ?? fallback;
        const chosen = sets.find((s) => s.name === catalog.meta('modelSet')) ?? active;
        return {
          roots: catalog.rootInfos(offlineReason),
          counts: catalog.counts(active.version),
          failures: catalog.failures(),
          active,
          modelSets: modelSetStatus(catalog, sets, active, chosen),
        };
      } finally {
        catalog.close();
      }
    } finally {
      await rm(temp, { recursive: true, force: true });
    }
  }

  /** Stops indexing and watching, saves the index atomically, releases the lock. */
  async close(): Promise<void> {
    if (this.indexer.closed) return;
    this.indexer.cancel();
    await this.watcher.stop();
    await this.indexer.running?.catch(() => undefined);
    this.indexer.closed = true;
    let saveError: unknown;
    try {
      this.search.save();
    } catch (error) {
      saveError = error;
    }
    await this.indexer.close();
    await this.choice.close();
    this.catalog.close();
    this.release();
    if (saveError) throw saveError;
  }
}
