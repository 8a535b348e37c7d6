import { accessSync, constants, existsSync, realpathSync, statSync } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { watch as chokidarWatch, type FSWatcher } from 'chokidar';
import { Piscina } from 'piscina';
import type { FileType, IndexProgress, IndexState, RootInfo, Status } from '../../contract/index.ts';
import { type CnnBackbone, imagenetClassProbs } from '../cnn/index.ts';
import { ArgumentError } from '../errors.ts';
import { makeDirSync } from '../files.ts';
import { FneExtractor } from '../fne/index.ts';
import { ClassTable, decodeTopClasses, encodeTopClasses, topClasses } from '../fusion/index.ts';
import { DEFAULT_MODEL_SET, findModelSet, JointModel, listModelSets, type ModelSet } from '../joint/index.ts';
import { Catalog, type KnownFile } from './catalog.ts';
import type { DecodeResult, DecodeTask } from './decode-worker.ts';
import { haltPoint } from './halt.ts';
import { acquireLock } from './lock.ts';
import { dequantize, quantize } from './quantize.ts';
import {
  DEFAULT_HNSW,
  type HnswParams,
  IndexSaveError,
  type SavedIndexState,
  VectorIndex,
} from './vector-index.ts';
import { skippedName, type WalkedFile, type WalkResult, walk } from './walker.ts';

export const CATALOG_FILE = 'catalog.db';
export const INDEX_FILE = 'vectors.hnsw';

export interface LibraryOptions {
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
  /** Decode worker threads (default: one per core). */
  workers?: number;
  /** Photos per CNN batch (default 8, the measured best on CPU). */
  batchSize?: number;
  hnsw?: Partial<HnswParams>;
  /** Seconds between index checkpoints while indexing (default 60; 0: after every batch). */
  checkpointSeconds?: number;
}

interface IndexStateMeta extends SavedIndexState {
  model: string;
  dim: number;
  seq: number;
}

type Job = { id: number; path: string; rootId: number };

const workerUrl = new URL(
  import.meta.url.endsWith('.ts') ? './decode-worker.ts' : './decode-worker.js',
  import.meta.url,
);

const FORMAT_TYPES: Record<string, FileType> = {
  jpeg: 'jpeg',
  png: 'png',
  webp: 'webp',
  tiff: 'tiff',
  gif: 'gif',
  avif: 'avif',
  heic: 'heic',
};

/**
 * A photo library: the catalog (SQLite, the source of truth), the vector index (HNSW, rebuilt from the
 * catalog whenever it is missing, stale or damaged), the walker and incremental indexer, and the watcher.
 * One process holds a library at a time (a pid lock file).
 */
export class Library {
  private vectors!: VectorIndex;
  private readonly indexFile: string;
  /** The set the person chose, while its vectors are being made beside the active set's; null when none is. */
  private target: ModelSet | null = null;
  /** Open models by set version and extractors by backbone; the ones this library opened are closed with it. */
  private readonly models = new Map<string, Promise<JointModel>>();
  private readonly extractors = new Map<CnnBackbone, Promise<FneExtractor>>();
  private readonly owned: Array<Promise<{ close(): Promise<void> }>> = [];
  private switched: ((model: JointModel, extractor: FneExtractor) => Promise<() => void>) | undefined;
  private pool: Piscina<DecodeTask, DecodeResult> | undefined;
  private running: Promise<IndexProgress> | null = null;
  private state: IndexProgress = idleProgress();
  private paused = false;
  private resumeGate: (() => void) | null = null;
  private cancelled = false;
  private watcher: FSWatcher | null = null;
  private watchTimer: NodeJS.Timeout | null = null;
  private offlinePoll: NodeJS.Timeout | null = null;
  private watchDirty = false;
  private readonly offline = new Set<number>();
  private closed = false;
  /** Every photo's top classes, in memory for the concept score (6 MB at 100k photos). */
  private classTable = new ClassTable();

  private constructor(
    readonly dir: string,
    /** The source of truth: rooms read and write photos, descriptions and filters through it directly. */
    readonly catalog: Catalog,
    private readonly release: () => void,
    private readonly sets: readonly ModelSet[],
    /** The model set whose vectors and classes serve search. */
    private active: ModelSet,
    private readonly options: LibraryOptions,
    private readonly hnsw: HnswParams,
  ) {
    this.indexFile = join(dir, INDEX_FILE);
    const given = options.model;
    const set = given && sets.find((s) => resolve(s.jointDir) === resolve(given.dir));
    if (given && set) this.models.set(set.version, Promise.resolve(given));
    if (options.extractor)
      this.extractors.set(options.extractor.backbone, Promise.resolve(options.extractor));
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
      const hnsw = { ...DEFAULT_HNSW, ...options.hnsw };
      const library = new Library(dir, catalog, release, sets, active, options, hnsw);
      library.choose(target);
      library.openVectors();
      library.loadClasses();
      library.refreshOnline();
      return library;
    } catch (error) {
      catalog?.close();
      release();
      throw error;
    }
  }

  /** Manifest name + sha256 of its manifest.json of the set serving search: rows of other versions are not used. */
  get modelVersion(): string {
    return this.active.version;
  }

  get dim(): number {
    return this.active.dim;
  }

  /**
   * Moves the library to the model set of this name (kept as its choice): the next `index` makes the set's
   * vectors and classes beside the served ones, then swaps (see switchAll). The served set's name cancels a
   * switch under way; its rows are dropped.
   */
  chooseModelSet(name: string): void {
    const set = findModelSet(this.sets, name);
    this.catalog.setMeta('modelSet', set.name);
    this.choose(set);
  }

  private choose(target: ModelSet): void {
    this.target = target.version === this.active.version ? null : target;
    const kept = this.target ? [this.active.version, this.target.version] : [this.active.version];
    this.catalog.transaction(() => {
      this.catalog.setMeta('vectors', this.active.version);
      this.catalog.keepModels(kept);
      this.catalog.requeueOtherModels(this.active.version);
    });
  }

  /** The served set, the chosen one, how many indexed photos still lack the chosen set's vector, every set. */
  modelSets(): ModelSetStatus {
    return modelSetStatus(this.catalog, this.sets, this.active, this.target ?? this.active);
  }

  /** The joint model and CNN of the set serving search (opened on first use). */
  async activeModels(): Promise<{ model: JointModel; extractor: FneExtractor }> {
    const [model, extractor] = await Promise.all([this.openModel(), this.openExtractor()]);
    return { model, extractor };
  }

  /**
   * Called with the chosen set's models once its vectors are all made, before the swap: what it resolves to
   * runs in the same step as the swap, so no query is answered by one set's text side and the other's vectors.
   */
  onSwitch(prepare: (model: JointModel, extractor: FneExtractor) => Promise<() => void>): void {
    this.switched = prepare;
  }

  private loadClasses(): void {
    this.classTable = new ClassTable();
    for (const row of this.catalog.classRows(this.modelVersion))
      this.classTable.set(row.id, decodeTopClasses(row.top));
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

  // ---- vectors: catalog -> HNSW

  /** Loads the saved index and replays the vector changes made since it was saved; rebuilds when it can't. */
  private openVectors(): void {
    const meta = this.savedState();
    if (meta && meta.model === this.modelVersion && meta.dim === this.dim && existsSync(this.indexFile)) {
      try {
        const index = VectorIndex.load(this.indexFile, this.dim, meta, this.hnsw);
        for (const id of this.catalog.vectorChangesSince(meta.seq)) this.syncVector(index, id);
        if (index.size === this.catalog.vectorCount(this.modelVersion) && this.tombstonesAcceptable(index)) {
          this.vectors = index;
          return;
        }
      } catch {
        // Missing, stale, corrupt or foreign: the catalog has every vector, so rebuild.
      }
    }
    this.rebuildVectors();
  }

  private tombstonesAcceptable(index: VectorIndex): boolean {
    // Tombstones still cost search time and file space; past a quarter of the graph, a rebuild is cheaper.
    return index.deletedCount <= Math.max(1000, index.size / 4);
  }

  /** Builds the index from the catalog's vectors. Public for tools; opening does it when needed. */
  rebuildVectors(): void {
    const count = this.catalog.vectorCount(this.modelVersion);
    const index = VectorIndex.create(this.dim, Math.ceil(count * 1.25) + 64, this.hnsw);
    for (const v of this.catalog.vectors(this.modelVersion)) index.upsert(v.id, dequantize(v.q, v.scale));
    this.vectors = index;
    // The saved file (if any) no longer matches: forget it so a crash before the next save rebuilds again.
    this.catalog.setMeta('hnsw', 'null');
  }

  private syncVector(index: VectorIndex, id: number): void {
    const v = this.catalog.vector(id, this.modelVersion);
    if (v) index.upsert(id, dequantize(v.q, v.scale));
    else index.remove(id);
  }

  private savedState(): IndexStateMeta | null {
    try {
      return JSON.parse(this.catalog.meta('hnsw') ?? 'null') as IndexStateMeta | null;
    } catch {
      return null;
    }
  }

  /** Saves the vector index atomically; on failure (IndexSaveError) the previous file and the catalog are intact. */
  saveIndex(): void {
    const seq = this.catalog.lastVectorSeq();
    // Nothing changed since the last save: rewriting (and re-reading) a 100 MB graph would be pure cost.
    const saved = this.savedState();
    if (saved && saved.seq === seq && saved.model === this.modelVersion && existsSync(this.indexFile)) return;
    const written = this.vectors.save(this.indexFile);
    haltPoint('saved');
    const meta: IndexStateMeta = { ...written, model: this.modelVersion, dim: this.dim, seq };
    this.catalog.transaction(() => {
      this.catalog.setMeta('hnsw', JSON.stringify(meta));
      this.catalog.pruneVectorLog(seq);
    });
  }

  /** How many vectors the search index holds (equals the catalog's vectors of this model). */
  indexedVectors(): number {
    return this.vectors.size;
  }

  // ---- roots

  addRoot(path: string): RootInfo {
    let real: string;
    try {
      // Symlinks and relative paths resolved, so one folder can't be added twice under two names.
      real = realpathSync(resolve(path));
      if (!statSync(real).isDirectory()) throw new ArgumentError('path', `${path} is not a folder`);
      accessSync(real, constants.R_OK | constants.X_OK);
    } catch (error) {
      if (error instanceof ArgumentError) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      throw new ArgumentError(
        'path',
        code === 'ENOENT' ? `${path} does not exist` : `${path} cannot be read (${code ?? 'error'})`,
      );
    }
    for (const root of this.catalog.rootRows()) {
      if (root.path === real) throw new ArgumentError('path', `${path} is already a library folder`);
      if (inside(real, root.path))
        throw new ArgumentError('path', `${path} is inside the library folder ${root.path}`);
      if (inside(root.path, real)) {
        throw new ArgumentError(
          'path',
          `${path} contains the library folder ${root.path}; remove that one first`,
        );
      }
    }
    const id = this.catalog.insertRoot(real);
    void this.rewatch();
    return this.roots().find((r) => r.id === id) as RootInfo;
  }

  removeRoot(rootId: number): { removedImages: number } {
    if (!this.catalog.root(rootId)) throw new ArgumentError('rootId', `no library folder has id ${rootId}`);
    const ids = this.catalog.imageIdsOfRoot(rootId);
    const removedImages = this.catalog.deleteRoot(rootId);
    for (const id of ids) {
      this.vectors.remove(id);
      this.classTable.delete(id);
    }
    this.offline.delete(rootId);
    void this.rewatch();
    return { removedImages };
  }

  roots(): RootInfo[] {
    this.refreshOnline();
    return this.catalog.rootInfos(offlineReason);
  }

  /** A held root stays offline until a walk takes it as it is again (see reconcile). */
  private refreshOnline(): void {
    for (const root of this.catalog.rootRows()) {
      if (isDir(root.path) && this.catalog.rootWalk(root.id).held === null) this.offline.delete(root.id);
      else this.offline.add(root.id);
    }
  }

  counts(): { total: number; indexed: number; failed: number; pending: number } {
    return this.catalog.counts(this.modelVersion);
  }

  // ---- images, vectors, search

  vector(imageId: number): Float32Array | null {
    const v = this.catalog.vector(imageId, this.modelVersion);
    return v ? dequantize(v.q, v.scale) : null;
  }

  nearest(
    query: Float32Array,
    k: number,
    allow?: (imageId: number) => boolean,
  ): Array<{ imageId: number; score: number }> {
    if (query.length !== this.dim)
      throw new ArgumentError('query', `expected ${this.dim} values, got ${query.length}`);
    // Photos of an unplugged disk stay in the catalog but are not offered: they cannot be opened.
    const hidden = this.offline.size > 0 ? this.offlineImageIds() : null;
    const filter =
      hidden && allow
        ? (id: number) => !hidden.has(id) && allow(id)
        : hidden
          ? (id: number) => !hidden.has(id)
          : allow;
    return this.vectors.search(query, k, filter).map((r) => ({ imageId: r.label, score: r.score }));
  }

  private offlineImageIds(): Set<number> {
    const ids = new Set<number>();
    for (const rootId of this.offline) for (const id of this.catalog.imageIdsOfRoot(rootId)) ids.add(id);
    return ids;
  }

  /**
   * Every photo's stored top classes, for the concept score. A row may outlive its photo until the library is
   * reopened (a walk's deletions do not pass through here): callers check ids against the catalog.
   */
  classes(): Pick<ClassTable, 'view' | 'row' | 'size'> {
    return this.classTable;
  }

  /** False for the photos of an unplugged disk: kept in the catalog, not offered. */
  rootOnline(rootId: number): boolean {
    return !this.offline.has(rootId);
  }

  // ---- indexing

  progress(): IndexProgress {
    return { ...this.state };
  }

  pause(): void {
    if (!this.running || this.paused) return;
    this.paused = true;
    this.state = { ...this.state, state: 'paused' };
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.running) this.state = { ...this.state, state: 'running' };
    this.resumeGate?.();
    this.resumeGate = null;
  }

  cancel(): void {
    if (!this.running) return;
    this.cancelled = true;
    this.resume();
  }

  /**
   * Walks the roots (all, or one) and brings the catalog up to date: new photos embedded, changed ones
   * (size/mtime, confirmed by hash) re-embedded, moved ones re-pathed by hash, deleted ones removed, offline
   * roots left alone, and so are roots that look unmounted unless `removeMissing` (the person confirmed).
   * Resolves when done or cancelled; a run already going is joined, not doubled.
   */
  index(
    options: { rootId?: number; removeMissing?: boolean; onProgress?: (p: IndexProgress) => void } = {},
  ): Promise<IndexProgress> {
    if (this.closed) return Promise.reject(new ArgumentError('library', 'the library is closed'));
    if (this.running) return this.running;
    if (options.rootId !== undefined && !this.catalog.root(options.rootId)) {
      return Promise.reject(new ArgumentError('rootId', `no library folder has id ${options.rootId}`));
    }
    this.cancelled = false;
    this.paused = false;
    const run = this.runIndex(
      options.rootId,
      options.removeMissing ?? false,
      options.onProgress ?? (() => {}),
      new Set(),
    );
    this.running = run.finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async runIndex(
    rootId: number | undefined,
    removeMissing: boolean,
    onProgress: (p: IndexProgress) => void,
    changed: Set<number>,
  ): Promise<IndexProgress> {
    const emit = (patch: Partial<IndexProgress>) => {
      this.state = { ...this.state, ...patch };
      if (this.paused && this.state.state === 'running') this.state.state = 'paused';
      onProgress({ ...this.state });
    };
    const job = this.catalog.startJob(rootId ?? null);
    this.state = { ...idleProgress(), state: 'walking' };
    emit({});
    let finalState: IndexState = 'done';
    try {
      const roots = this.catalog.rootRows().filter((r) => rootId === undefined || r.id === rootId);
      const online = await this.reconcile(roots, changed, removeMissing);
      if (this.cancelled) finalState = 'cancelled';
      else {
        const jobs = this.catalog.pending(online);
        emit({ state: 'running', total: jobs.length });
        finalState = await this.embedAll(jobs, emit, changed);
        if (finalState === 'done') finalState = await this.classifyAll(online, emit);
        // A choice made while the switch ran is taken in the same run.
        while (finalState === 'done' && this.target) finalState = await this.switchAll(online, emit, changed);
      }
    } finally {
      this.catalog.finishJob(job, finalState, this.state.total, this.state.done, this.state.failed);
      emit({ state: finalState, currentFile: null, etaSeconds: finalState === 'done' ? 0 : null });
      this.lastChanged = [...changed];
    }
    // A save failure is reported to the caller; the catalog is complete and the old index file intact.
    this.saveIndex();
    return this.progress();
  }

  /** Image ids the last indexing run added, changed, moved or removed (what the watcher reports). */
  private lastChanged: number[] = [];

  /**
   * Walk the roots and bring the catalog's file list in line; returns the ids of the roots that are online.
   * A root whose walk looks like an unmounted disk (see suspectWalk) is held offline with its reason and left
   * as it was, unless `removeMissing` says the person confirmed the photos are gone.
   */
  private async reconcile(
    roots: Array<{ id: number; path: string }>,
    changed: Set<number>,
    removeMissing: boolean,
  ): Promise<number[]> {
    const plans = new Map<number, RootPlan>();
    for (const root of roots) {
      if (!isDir(root.path)) {
        this.offline.add(root.id);
        continue;
      }
      let walked: WalkResult;
      try {
        walked = await walk(root.path);
      } catch {
        this.offline.add(root.id);
        continue;
      }
      const knownFiles = this.catalog.knownFiles(root.id);
      const known = new Map(knownFiles.map((k) => [k.path, k]));
      const plan: RootPlan = {
        root: root.path,
        device: walked.device,
        seen: walked.files.length,
        known: knownFiles.length,
        failures: walked.failures,
        fresh: [],
        modified: [],
        missing: [],
      };
      for (const file of walked.files) {
        const k = known.get(file.path);
        known.delete(file.path);
        if (!k) plan.fresh.push(file);
        else if (k.bytes !== file.bytes || k.mtimeMs !== file.mtimeMs) plan.modified.push({ known: k, file });
      }
      // Not seen: gone, unless its folder could not be listed this time.
      for (const k of known.values())
        if (!walked.unreadable.some((dir) => inside(k.path, dir))) plan.missing.push(k);
      plans.set(root.id, plan);
      if (this.cancelled) return [];
    }
    haltPoint('walked');

    const held = new Map<number, string>();
    if (!removeMissing) {
      for (const [rootId, plan] of plans) {
        const why = suspectWalk(plan, this.catalog.rootWalk(rootId).device);
        if (why) held.set(rootId, why);
      }
    }
    const taken = () => [...plans].filter(([rootId]) => !held.has(rootId));

    const hashes = new Map<string, string | null>();
    const needHash = taken().flatMap(([, plan]) => [
      ...(taken().some(([, p]) => p.missing.some((m) => m.hash)) ? plan.fresh.map((f) => f.path) : []),
      ...plan.modified.filter((m) => m.known.hash).map((m) => m.file.path),
    ]);
    if (needHash.length > 0) {
      const pool = this.decodePool();
      const results = await Promise.all(
        needHash.map((path) =>
          // Unhashable here means "treat as new/changed": the decode pass then records what is wrong with it.
          pool.run({ path, mode: 'hash' }).catch((): DecodeResult => ({ kind: 'unstable', path })),
        ),
      );
      for (const r of results) hashes.set(r.path, r.kind === 'hashed' ? r.hash : null);
    }

    // Moved photos are not lost: only what no new file matches by hash counts as gone, and a root losing most
    // of its photos that way is held too (which changes what the other roots' moves can match: plan again).
    let moves = planMoves(taken(), hashes);
    for (let again = !removeMissing; again; ) {
      again = false;
      for (const [rootId, plan] of taken()) {
        const gone = plan.missing.filter((m) => moves.gone.has(m.id)).length;
        if (gone >= MOST_GONE_MIN && gone * 2 > plan.known) {
          held.set(
            rootId,
            `${gone} of its ${plan.known} photos vanished at once (a disk or network share only partly mounted?); nothing was removed`,
          );
          again = true;
        }
      }
      if (again) moves = planMoves(taken(), hashes);
    }

    this.catalog.transaction(() => {
      for (const { from, rootId, root, file } of moves.moved) {
        this.catalog.repath(from.id, rootId, root, file.path, file.bytes, file.mtimeMs);
        changed.add(from.id);
      }
      for (const { rootId, root, file } of moves.fresh)
        changed.add(this.catalog.insertPending(rootId, root, file.path, file.bytes, file.mtimeMs));
      for (const [, plan] of taken()) {
        for (const { known, file } of plan.modified) {
          if (known.hash && hashes.get(file.path) === known.hash)
            this.catalog.touch(known.id, file.bytes, file.mtimeMs);
          else {
            this.catalog.markChanged(known.id, file.bytes, file.mtimeMs);
            changed.add(known.id);
          }
        }
      }
      for (const id of moves.gone) {
        this.catalog.deleteImage(id);
        changed.add(id);
      }
      for (const [rootId, plan] of plans) {
        const why = held.get(rootId);
        if (why) this.catalog.holdRoot(rootId, why);
        else {
          this.catalog.acceptWalk(rootId, plan.device);
          this.catalog.setWalkFailures(rootId, plan.failures);
        }
      }
      haltPoint('reconciling');
    });
    for (const id of moves.gone) this.vectors.remove(id);
    for (const rootId of held.keys()) this.offline.add(rootId);
    const online = taken().map(([rootId]) => rootId);
    for (const rootId of online) this.offline.delete(rootId);
    return online;
  }

  private async embedAll(
    jobs: Job[],
    emit: (patch: Partial<IndexProgress>) => void,
    changed: Set<number>,
  ): Promise<IndexState> {
    if (jobs.length === 0) return 'done';
    const extractor = await this.openExtractor();
    const model = await this.openModel();
    const pool = this.decodePool();
    const batchSize = this.options.batchSize ?? 8;
    // Enough decodes in flight that the workers never wait for the CNN, bounded so memory stays small.
    const window = batchSize * 2 + pool.maxThreads;
    const checkpointMs = (this.options.checkpointSeconds ?? 60) * 1000;
    let lastCheckpoint = Date.now();
    let done = 0;
    let failed = 0;
    let activeMs = 0;
    let activeSince = Date.now();

    const inflight: Array<Promise<DecodeResult>> = [];
    let next = 0;
    const fill = async () => {
      while (inflight.length < window && next < jobs.length && !this.cancelled) {
        if (this.paused) {
          activeMs += Date.now() - activeSince;
          await new Promise<void>((resolve) => {
            this.resumeGate = resolve;
          });
          activeSince = Date.now();
          if (this.cancelled) break;
        }
        const job = jobs[next++] as Job;
        inflight.push(
          pool.run({ path: job.path, mode: 'decode' }).catch(
            (error: unknown): DecodeResult => ({
              // A decoder crash on one file (not a typed ImageError) is that file's failure, not the run's.
              kind: 'failed',
              path: job.path,
              reason: `decode-crashed: ${error instanceof Error ? error.message : String(error)}`,
              hash: null,
              bytes: 0,
              mtimeMs: 0,
            }),
          ),
        );
      }
    };
    const idOf = new Map(jobs.map((j) => [j.path, j.id]));
    const report = (currentFile: string | null) => {
      const seconds = (activeMs + Date.now() - activeSince) / 1000;
      const rate = seconds > 0 ? done / seconds : 0;
      emit({
        done,
        failed,
        imagesPerSecond: Math.round(rate * 10) / 10,
        etaSeconds: rate > 0 ? Math.round((jobs.length - done) / rate) : null,
        currentFile,
      });
    };

    let batch: Array<Extract<DecodeResult, { kind: 'decoded' }>> = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const images = batch;
      batch = [];
      const features = await extractor.extractDecoded(
        images.map((d) => ({
          file: d.path,
          pixels: d.pixels,
          width: d.width,
          height: d.height,
          format: d.format,
        })),
      );
      const vectors = await model.embedImages(features.map((f) => ({ fne: f.fne, oneLayer: f.oneLayer })));
      const stored = images.map((_d, i) => quantize(vectors.subarray(i * this.dim, (i + 1) * this.dim)));
      const classes = features.map((f) => encodeTopClasses(topClasses(imagenetClassProbs(f.probs))));
      this.catalog.transaction(() => {
        images.forEach((d, i) => {
          const id = idOf.get(d.path) as number;
          const { q, scale } = stored[i] as { q: Buffer; scale: number };
          this.catalog.setIndexed(
            id,
            {
              bytes: d.bytes,
              mtimeMs: d.mtimeMs,
              hash: d.hash,
              width: d.width,
              height: d.height,
              takenAt: d.takenAt,
              camera: d.camera,
              type: FORMAT_TYPES[d.format] ?? null,
            },
            this.modelVersion,
            q,
            scale,
          );
          this.catalog.setClasses(id, this.modelVersion, classes[i] as Buffer);
        });
      });
      haltPoint('embedded');
      images.forEach((d, i) => {
        const { q, scale } = stored[i] as { q: Buffer; scale: number };
        const id = idOf.get(d.path) as number;
        this.vectors.upsert(id, dequantize(q, scale));
        this.classTable.set(id, decodeTopClasses(classes[i] as Buffer));
        changed.add(id);
      });
      done += images.length;
      report(images.at(-1)?.path ?? null);
      if (Date.now() - lastCheckpoint >= checkpointMs) {
        lastCheckpoint = Date.now();
        this.saveIndex();
      }
    };

    await fill();
    while (inflight.length > 0) {
      const result = await (inflight.shift() as Promise<DecodeResult>);
      await fill();
      const id = idOf.get(result.path) as number;
      switch (result.kind) {
        case 'decoded':
          batch.push(result);
          if (batch.length >= batchSize) await flush();
          break;
        case 'failed':
          this.catalog.transaction(() =>
            this.catalog.setFailed(id, result.reason, {
              bytes: result.bytes,
              mtimeMs: result.mtimeMs,
              hash: result.hash,
            }),
          );
          this.vectors.remove(id);
          this.classTable.delete(id);
          changed.add(id);
          done++;
          failed++;
          report(result.path);
          break;
        case 'gone':
          // Deleted between the walk and its turn: as if the walk had not seen it.
          this.catalog.transaction(() => this.catalog.deleteImage(id));
          this.vectors.remove(id);
          this.classTable.delete(id);
          changed.add(id);
          done++;
          report(result.path);
          break;
        case 'unstable':
          // Still being written: it stays pending and the next pass (or the watcher) takes it.
          done++;
          report(result.path);
          break;
        case 'hashed':
          break;
      }
      if (inflight.length === 0) await fill();
    }
    await flush();
    return this.cancelled ? 'cancelled' : 'done';
  }

  /**
   * Photos indexed before the catalog kept class probabilities gain them: one more CNN pass each, their
   * vectors untouched, reported as more of the same run (search keeps working on what is there). A photo
   * that changed or no longer decodes is left to the next walk, which re-embeds it anyway.
   */
  private async classifyAll(
    online: number[],
    emit: (patch: Partial<IndexProgress>) => void,
  ): Promise<IndexState> {
    const jobs = this.catalog.missingClasses(online, this.modelVersion);
    if (jobs.length === 0) return 'done';
    const extractor = await this.openExtractor();
    const pool = this.decodePool();
    const batchSize = this.options.batchSize ?? 8;
    let done = this.state.done;
    emit({ state: 'running', total: this.state.total + jobs.length });
    for (let start = 0; start < jobs.length; start += batchSize) {
      if (this.paused) await new Promise<void>((resolve) => (this.resumeGate = resolve));
      if (this.cancelled) return 'cancelled';
      const batch = jobs.slice(start, start + batchSize);
      const decoded = await Promise.all(
        batch.map((job) => pool.run({ path: job.path, mode: 'decode' }).catch(() => null)),
      );
      const same = batch.flatMap((job, k) => {
        const d = decoded[k];
        return d?.kind === 'decoded' && d.hash === job.hash ? [{ id: job.id, d }] : [];
      });
      const features = await extractor.extractDecoded(
        same.map(({ d }) => ({
          file: d.path,
          pixels: d.pixels,
          width: d.width,
          height: d.height,
          format: d.format,
        })),
      );
      const classes = features.map((f) => encodeTopClasses(topClasses(imagenetClassProbs(f.probs))));
      this.catalog.transaction(() => {
        for (const [k, { id }] of same.entries())
          this.catalog.setClasses(id, this.modelVersion, classes[k] as Buffer);
      });
      for (const [k, { id }] of same.entries())
        this.classTable.set(id, decodeTopClasses(classes[k] as Buffer));
      done += batch.length;
      emit({ done, currentFile: batch.at(-1)?.path ?? null });
    }
    return 'done';
  }

  private decodePool(): Piscina<DecodeTask, DecodeResult> {
    if (!this.pool) {
      const threads = this.options.workers ?? Math.max(1, availableParallelism());
      this.pool = new Piscina<DecodeTask, DecodeResult>({
        filename: workerUrl.href,
        minThreads: threads,
        maxThreads: threads,
        // Source runs through tsx; a worker thread does not inherit a loader registered through its API.
        execArgv: workerUrl.pathname.endsWith('.ts') ? ['--import', tsxLoader()] : [],
      });
    }
    return this.pool;
  }

  /**
   * The chosen set's vectors and classes for every indexed photo of the online roots, one CNN pass each with its
   * backbone, written beside the served set's (which keep answering); then the swap. A kill loses at most the
   * batch in flight: the next run goes on from the photos still without a vector of the set.
   */
  private async switchAll(
    online: number[],
    emit: (patch: Partial<IndexProgress>) => void,
    changed: Set<number>,
  ): Promise<IndexState> {
    const target = this.target as ModelSet;
    const jobs = this.catalog.missingVectors(online, target.version);
    const extractor = await this.openExtractor(target.backbone);
    const model = await this.openModel(target);
    const pool = this.decodePool();
    const batchSize = this.options.batchSize ?? 8;
    let done = this.state.done;
    emit({ state: 'running', total: this.state.total + jobs.length });
    for (let start = 0; start < jobs.length; start += batchSize) {
      if (this.paused) await new Promise<void>((resolve) => (this.resumeGate = resolve));
      if (this.cancelled) return 'cancelled';
      const batch = jobs.slice(start, start + batchSize);
      const decoded = await Promise.all(
        batch.map((job) => pool.run({ path: job.path, mode: 'decode' }).catch(() => null)),
      );
      // A photo changed since its walk, or unreadable now, waits for the next walk (pending after the swap).
      const same = batch.flatMap((job, k) => {
        const d = decoded[k];
        return d?.kind === 'decoded' && d.hash === job.hash ? [{ id: job.id, d }] : [];
      });
      const features = await extractor.extractDecoded(
        same.map(({ d }) => ({
          file: d.path,
          pixels: d.pixels,
          width: d.width,
          height: d.height,
          format: d.format,
        })),
      );
      const vectors = await model.embedImages(features.map((f) => ({ fne: f.fne, oneLayer: f.oneLayer })));
      if (this.target !== target) return 'done';
      this.catalog.transaction(() => {
        for (const [k, { id }] of same.entries()) {
          const { q, scale } = quantize(vectors.subarray(k * target.dim, (k + 1) * target.dim));
          this.catalog.setVector(id, target.version, q, scale);
          const top = encodeTopClasses(
            topClasses(imagenetClassProbs((features[k] as { probs: Float32Array }).probs)),
          );
          this.catalog.setClasses(id, target.version, top);
        }
      });
      haltPoint('switching');
      done += batch.length;
      emit({ done, currentFile: batch.at(-1)?.path ?? null });
    }
    const install = await this.switched?.(model, extractor);
    if (this.target !== target || this.cancelled) return this.cancelled ? 'cancelled' : 'done';
    this.catalog.transaction(() => {
      // From here the chosen set's rows are the served ones (and the only ones logged, see schema.ts 5).
      this.catalog.setMeta('vectors', target.version);
      this.catalog.keepModels([target.version]);
      // What the pass could not take (changed, unreadable, offline roots) is embedded again by the next walk.
      this.catalog.requeueOtherModels(target.version);
      haltPoint('swapping');
    });
    this.active = target;
    this.target = null;
    this.rebuildVectors();
    this.loadClasses();
    install?.();
    for (const { id } of jobs) changed.add(id);
    return 'done';
  }

  private openExtractor(backbone = this.active.backbone): Promise<FneExtractor> {
    let extractor = this.extractors.get(backbone);
    if (!extractor) {
      extractor = FneExtractor.open({ backbone });
      this.extractors.set(backbone, extractor);
      this.owned.push(extractor);
      // A failed open is not kept: the next run tries again.
      extractor.catch(() => this.extractors.delete(backbone));
    }
    return extractor;
  }

  private openModel(set = this.active): Promise<JointModel> {
    let model = this.models.get(set.version);
    if (!model) {
      model = JointModel.open(set.jointDir);
      this.models.set(set.version, model);
      this.owned.push(model);
      model.catch(() => this.models.delete(set.version));
    }
    return model;
  }

  // ---- watching

  /**
   * Keeps the catalog current while the app runs: changes under the roots (debounced) trigger an incremental
   * run; a root that vanishes goes offline (nothing deleted) and is picked up again when it returns.
   */
  async watch(onChange?: (imageIds: number[]) => void): Promise<void> {
    this.onWatchChange = onChange;
    await this.rewatch(true);
    let heldLook = this.heldLook();
    this.offlinePoll ??= setInterval(() => {
      const before = new Set(this.offline);
      this.refreshOnline();
      const back = [...before].filter((id) => !this.offline.has(id));
      const lost = [...this.offline].filter((id) => !before.has(id));
      // A held root comes back by a walk: a disk mounted on its folder changes the folder's device and inode.
      const look = this.heldLook();
      const remounted = look !== heldLook;
      heldLook = look;
      if (back.length > 0 || lost.length > 0 || remounted) {
        void this.rewatch();
        this.scheduleWatchRun();
      }
    }, 2000);
    this.offlinePoll.unref();
  }

  /** The device, inode and mtime of each held root's folder, as one string to compare. */
  private heldLook(): string {
    return this.catalog
      .rootRows()
      .filter((r) => this.catalog.rootWalk(r.id).held !== null)
      .map((r) => {
        try {
          const s = statSync(r.path);
          return `${r.id}:${s.dev}:${s.ino}:${s.mtimeMs}`;
        } catch {
          return `${r.id}:-`;
        }
      })
      .join(' ');
  }

  private onWatchChange: ((imageIds: number[]) => void) | undefined;
  /** watch() was called and unwatch() was not: roots added later are watched too. */
  private watching = false;

  private async rewatch(start = false): Promise<void> {
    if (start) this.watching = true;
    if (!this.watching) return;
    await this.watcher?.close();
    this.watcher = null;
    const paths = this.catalog
      .rootRows()
      .map((r) => r.path)
      .filter(isDir);
    // chokidar never gets 'ready' for nothing to watch: an empty library (first run) waits for addRoot.
    if (paths.length === 0) return;
    const watcher = chokidarWatch(paths, {
      ignoreInitial: true,
      // chokidar has no loop detection: a link back up the tree would be watched forever. Photos under linked
      // folders are still found by every indexing run (the walker follows links, once each).
      followSymlinks: false,
      ignored: (path) => path.split(sep).some((part) => part !== '' && skippedName(part)),
      awaitWriteFinish: { stabilityThreshold: 300, pollInterval: 100 },
    });
    watcher.on('all', () => this.scheduleWatchRun());
    // A vanished folder can surface as a watcher error (EACCES, ENOENT): the offline poll handles roots.
    watcher.on('error', () => this.scheduleWatchRun());
    this.watcher = watcher;
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  }

  private scheduleWatchRun(): void {
    if (this.closed) return;
    if (this.watchTimer) clearTimeout(this.watchTimer);
    this.watchTimer = setTimeout(() => {
      this.watchTimer = null;
      if (this.running) {
        this.watchDirty = true;
        void this.running.finally(() => {
          if (this.watchDirty) {
            this.watchDirty = false;
            this.scheduleWatchRun();
          }
        });
        return;
      }
      this.index()
        .then(() => {
          if (this.lastChanged.length > 0) this.onWatchChange?.(this.lastChanged);
        })
        .catch(() => {});
    }, 500);
  }

  async unwatch(): Promise<void> {
    this.watching = false;
    if (this.watchTimer) clearTimeout(this.watchTimer);
    if (this.offlinePoll) clearInterval(this.offlinePoll);
    this.watchTimer = null;
    this.offlinePoll = null;
    const watcher = this.watcher;
    this.watcher = null;
    await watcher?.close();
  }

  /** Stops indexing and watching, saves the index atomically, releases the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.cancel();
    await this.unwatch();
    await this.running?.catch(() => undefined);
    this.closed = true;
    let saveError: unknown;
    try {
      this.saveIndex();
    } catch (error) {
      saveError = error;
    }
    await this.pool?.destroy();
    // The models of a set swapped out are closed only here: a call that began before the swap may still use them.
    const owned = await Promise.allSettled(this.owned);
    await Promise.all(owned.flatMap((r) => (r.status === 'fulfilled' ? [r.value.close()] : [])));
    this.catalog.close();
    this.release();
    if (saveError) throw saveError;
  }
}

/** The progress of a library that is not indexing. */
export function idleProgress(): IndexProgress {
  return {
    state: 'idle',
    done: 0,
    total: 0,
    failed: 0,
    imagesPerSecond: 0,
    etaSeconds: null,
    currentFile: null,
  };
}

/** What status shows of the model sets (the contract's Status.modelSets). */
export type ModelSetStatus = Status['modelSets'];

function modelSetStatus(
  catalog: Catalog | null,
  sets: readonly ModelSet[],
  active: ModelSet,
  chosen: ModelSet,
): ModelSetStatus {
  const indexed = (set: ModelSet) => catalog?.counts(set.version).indexed ?? 0;
  return {
    active: active.name,
    chosen: chosen.name,
    pending: chosen === active ? 0 : indexed(active) - indexed(chosen),
    available: sets.map((s) => ({
      name: s.name,
      backbone: s.backbone,
      languages: s.jaDir ? ['en', 'ja'] : ['en'],
    })),
  };
}

/** What one root's walk found against the catalog. */
interface RootPlan {
  root: string;
  device: string;
  /** Photo files the walk found. */
  seen: number;
  /** Photos the catalog holds for the root. */
  known: number;
  failures: WalkResult['failures'];
  fresh: WalkedFile[];
  modified: Array<{ known: KnownFile; file: WalkedFile }>;
  missing: KnownFile[];
}

/** A root losing at least this many photos, and more than half of them, in one walk is held (see reconcile). */
const MOST_GONE_MIN = 10;

/**
 * Why a walk looks like an unmounted disk (the empty mount point left behind, or another disk in its place)
 * rather than photos the person deleted; null when it does not. Removing on such a walk would throw away the
 * person's tags and captions, which no remount brings back.
 */
function suspectWalk(plan: RootPlan, lastDevice: string | null): string | null {
  if (plan.missing.length === 0) return null;
  if (plan.seen === 0)
    return `no photos were found in it, though the catalog holds ${plan.known} (an unmounted disk or network share?); nothing was removed`;
  if (lastDevice !== null && lastDevice !== plan.device)
    return `it is on another disk than at its last index and ${plan.missing.length} of its ${plan.known} photos are not there (another disk mounted in its place?); nothing was removed`;
  return null;
}

/** Matches the missing photos of these roots to their new files by hash: moved, new, and really gone. */
function planMoves(
  plans: Array<[number, RootPlan]>,
  hashes: Map<string, string | null>,
): {
  moved: Array<{ from: KnownFile; rootId: number; root: string; file: WalkedFile }>;
  fresh: Array<{ rootId: number; root: string; file: WalkedFile }>;
  gone: Set<number>;
} {
  const movedFrom = new Map<string, KnownFile[]>();
  const gone = new Set<number>();
  for (const [, plan] of plans) {
    for (const m of plan.missing) {
      gone.add(m.id);
      if (m.hash) movedFrom.set(m.hash, [...(movedFrom.get(m.hash) ?? []), m]);
    }
  }
  const moved: Array<{ from: KnownFile; rootId: number; root: string; file: WalkedFile }> = [];
  const fresh: Array<{ rootId: number; root: string; file: WalkedFile }> = [];
  for (const [rootId, plan] of plans) {
    for (const file of plan.fresh) {
      const hash = hashes.get(file.path);
      const from = hash ? movedFrom.get(hash)?.pop() : undefined;
      if (from) {
        moved.push({ from, rootId, root: plan.root, file });
        gone.delete(from.id);
      } else fresh.push({ rootId, root: plan.root, file });
    }
  }
  return { moved, fresh, gone };
}

/** Why a root is offline: its folder is gone, or a walk held it (see reconcile); null when online. */
function offlineReason(path: string, held: string | null): string | null {
  return isDir(path) ? held : 'the folder is missing (an unplugged disk?); its photos are kept';
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function inside(path: string, folder: string): boolean {
  const rel = relative(folder, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

function tsxLoader(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
}

export { IndexSaveError };
