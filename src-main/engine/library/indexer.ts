import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { FILE_TYPES, type FileType, type IndexProgress, type IndexState } from '../../contract/index.ts';
import { imagenetClassProbs } from '../cnn/index.ts';
import { ArgumentError } from '../errors.ts';
import type { FneExtractor, ImageFeatures } from '../fne/index.ts';
import { encodeTopClasses, topClasses } from '../fusion/index.ts';
import type { ModelSet } from '../joint/index.ts';
import { workerStart } from '../worker-start.ts';
import type { Catalog, KnownFile } from './catalog.ts';
import type { DecodeResult, DecodeTask } from './decode-worker.ts';
import { haltPoint } from './halt.ts';
import type { ModelChoice } from './model-choice.ts';
import { dequantize, quantize } from './quantize.ts';
import { inside, isDir, type Roots } from './roots.ts';
import type { SearchIndex } from './search-index.ts';
import { type WalkedFile, type WalkResult, walk } from './walker.ts';

type Job = { id: number; path: string; rootId: number };

const workerUrl = new URL(
  import.meta.url.endsWith('.ts') ? './decode-worker.ts' : './decode-worker.js',
  import.meta.url,
);

export interface IndexerOptions {
  /** Decode worker threads (default: one per core). */
  workers?: number;
  /** Photos per CNN batch (default 8, the measured best on CPU). */
  batchSize?: number;
  /** Seconds between index checkpoints while indexing (default 60; 0: after every batch). */
  checkpointSeconds?: number;
}

/**
 * The walk and the incremental indexer: brings the catalog in line with the roots, embeds what is new or
 * changed with the served set's models, fills in missing classes, and makes the chosen set's vectors before
 * swapping to it. One run at a time; it can be paused, resumed and cancelled.
 */
export class Indexer {
  private pool: Piscina<DecodeTask, DecodeResult> | undefined;
  /** The run under way, joined by a second call. */
  running: Promise<IndexProgress> | null = null;
  private state: IndexProgress = idleProgress();
  private paused = false;
  private resumeGate: (() => void) | null = null;
  private cancelled = false;
  /** Set by the library's close: no run starts after it. */
  closed = false;

  constructor(
    private readonly catalog: Catalog,
    private readonly search: SearchIndex,
    private readonly roots: Roots,
    private readonly choice: ModelChoice,
    private readonly options: IndexerOptions,
  ) {}

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
  run(
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
        while (finalState === 'done' && this.choice.target)
          finalState = await this.switchAll(online, emit, changed);
      }
    } finally {
      this.catalog.finishJob(job, finalState, this.state.total, this.state.done, this.state.failed);
      emit({ state: finalState, currentFile: null, etaSeconds: finalState === 'done' ? 0 : null });
      this.lastChanged = [...changed];
    }
    // A save failure is reported to the caller; the catalog is complete and the old index file intact.
    this.search.save();
    return this.progress();
  }

  /** Image ids the last indexing run added, changed, moved or removed (what the watcher reports). */
  lastChanged: number[] = [];

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
        this.roots.offline.add(root.id);
        continue;
      }
      let walked: WalkResult;
      try {
        walked = await walk(root.path);
      } catch {
        this.roots.offline.add(root.id);
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
    for (const id of moves.gone) this.search.removeVector(id);
    for (const rootId of held.keys()) this.roots.offline.add(rootId);
    const online = taken().map(([rootId]) => rootId);
    for (const rootId of online) this.roots.offline.delete(rootId);
    return online;
  }

  private async embedAll(
    jobs: Job[],
    emit: (patch: Partial<IndexProgress>) => void,
    changed: Set<number>,
  ): Promise<IndexState> {
    if (jobs.length === 0) return 'done';
    const { version, dim } = this.choice.active;
    const extractor = await this.choice.extractor();
    const model = await this.choice.model();
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
      const features = await extractor.extractDecoded(images.map(cnnInput));
      const vectors = await model.embedImages(features.map((f) => ({ fne: f.fne, oneLayer: f.oneLayer })));
      const stored = images.map((_d, i) => quantize(vectors.subarray(i * dim, (i + 1) * dim)));
      const classes = features.map(topClassesOf);
      this.catalog.transaction(() => {
        images.forEach((d, i) => {
          const id = idOf.get(d.path) as number;
          const { q, scale } = stored[i] as { q: Buffer; scale: number };
          const { bytes, mtimeMs, hash, width, height, takenAt, camera } = d;
          // sharp's format names are the file types' own (jpeg, png, ..., heic); anything else is unknown.
          const type = (FILE_TYPES as readonly string[]).includes(d.format) ? (d.format as FileType) : null;
          const image = { bytes, mtimeMs, hash, width, height, takenAt, camera, type };
          this.catalog.setIndexed(id, image, version, q, scale);
          this.catalog.setClasses(id, version, classes[i] as Buffer);
        });
      });
      haltPoint('embedded');
      images.forEach((d, i) => {
        const { q, scale } = stored[i] as { q: Buffer; scale: number };
        const id = idOf.get(d.path) as number;
        this.search.put(id, dequantize(q, scale), classes[i] as Buffer);
        changed.add(id);
      });
      done += images.length;
      report(images.at(-1)?.path ?? null);
      if (Date.now() - lastCheckpoint >= checkpointMs) {
        lastCheckpoint = Date.now();
        this.search.save();
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
        case 'failed': {
          const { bytes, mtimeMs, hash } = result;
          this.catalog.transaction(() => this.catalog.setFailed(id, result.reason, { bytes, mtimeMs, hash }));
          this.search.remove(id);
          changed.add(id);
          done++;
          failed++;
          report(result.path);
          break;
        }
        case 'gone':
          // Deleted between the walk and its turn: as if the walk had not seen it.
          this.catalog.transaction(() => this.catalog.deleteImage(id));
          this.search.remove(id);
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
    const version = this.choice.active.version;
    const jobs = this.catalog.missingClasses(online, version);
    if (jobs.length === 0) return 'done';
    const pass = { cancelled: false };
    for await (const { ids, features } of this.recompute(jobs, await this.choice.extractor(), emit, pass)) {
      const classes = features.map(topClassesOf);
      this.catalog.transaction(() => {
        for (const [k, id] of ids.entries()) this.catalog.setClasses(id, version, classes[k] as Buffer);
      });
      for (const [k, id] of ids.entries()) this.search.setClasses(id, classes[k] as Buffer);
    }
    return pass.cancelled ? 'cancelled' : 'done';
  }

  /**
   * A CNN pass over indexed photos, a batch at a time, counted as more of the run: each batch's photos that
   * still decode to the content of their recorded hash, with their features. A photo changed since its walk,
   * or unreadable now, is left out for the next walk. Stops (`pass.cancelled`) when the run is cancelled.
   */
  private async *recompute(
    jobs: ReadonlyArray<{ id: number; path: string; hash: string | null }>,
    extractor: FneExtractor,
    emit: (patch: Partial<IndexProgress>) => void,
    pass: { cancelled: boolean },
  ): AsyncGenerator<{ ids: number[]; features: ImageFeatures[] }> {
    const pool = this.decodePool();
    const batchSize = this.options.batchSize ?? 8;
    let done = this.state.done;
    emit({ state: 'running', total: this.state.total + jobs.length });
    for (let start = 0; start < jobs.length; start += batchSize) {
      if (this.paused) await new Promise<void>((resolve) => (this.resumeGate = resolve));
      if (this.cancelled) {
        pass.cancelled = true;
        return;
      }
      const batch = jobs.slice(start, start + batchSize);
      const decoded = await Promise.all(
        batch.map((job) => pool.run({ path: job.path, mode: 'decode' }).catch(() => null)),
      );
      const same = batch.flatMap((job, k) => {
        const d = decoded[k];
        return d?.kind === 'decoded' && d.hash === job.hash ? [{ id: job.id, d }] : [];
      });
      const features = await extractor.extractDecoded(same.map(({ d }) => cnnInput(d)));
      yield { ids: same.map(({ id }) => id), features };
      done += batch.length;
      emit({ done, currentFile: batch.at(-1)?.path ?? null });
    }
  }

  private decodePool(): Piscina<DecodeTask, DecodeResult> {
    if (!this.pool) {
      const threads = this.options.workers ?? Math.max(1, availableParallelism());
      const start = workerStart(workerUrl, {});
      this.pool = new Piscina<DecodeTask, DecodeResult>({
        filename: start.filename.href,
        workerData: start.workerData,
        minThreads: threads,
        maxThreads: threads,
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
    const target = this.choice.target as ModelSet;
    const jobs = this.catalog.missingVectors(online, target.version);
    const extractor = await this.choice.extractor(target.backbone);
    const model = await this.choice.model(target);
    const pass = { cancelled: false };
    for await (const { ids, features } of this.recompute(jobs, extractor, emit, pass)) {
      const vectors = await model.embedImages(features.map((f) => ({ fne: f.fne, oneLayer: f.oneLayer })));
      if (this.choice.target !== target) return 'done';
      this.catalog.transaction(() => {
        for (const [k, id] of ids.entries()) {
          const { q, scale } = quantize(vectors.subarray(k * target.dim, (k + 1) * target.dim));
          this.catalog.setVector(id, target.version, q, scale);
          this.catalog.setClasses(id, target.version, topClassesOf(features[k] as ImageFeatures));
        }
      });
      haltPoint('switching');
    }
    if (pass.cancelled) return 'cancelled';
    const install = await this.choice.switched?.(model, extractor);
    if (this.choice.target !== target || this.cancelled) return this.cancelled ? 'cancelled' : 'done';
    this.catalog.transaction(() => {
      // From here the chosen set's rows are the served ones (and the only ones logged, see schema.ts 5).
      this.catalog.setMeta('vectors', target.version);
      this.catalog.keepModels([target.version]);
      // What the pass could not take (changed, unreadable, offline roots) is embedded again by the next walk.
      this.catalog.requeueOtherModels(target.version);
      haltPoint('swapping');
    });
    this.choice.active = target;
    this.choice.target = null;
    this.search.serve(target);
    install?.();
    for (const { id } of jobs) changed.add(id);
    return 'done';
  }

  /** Ends the decode workers (the library's close, after the last run). */
  async close(): Promise<void> {
    await this.pool?.destroy();
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

/** What the CNN reads of a decoded photo. */
function cnnInput(d: Extract<DecodeResult, { kind: 'decoded' }>) {
  return { file: d.path, pixels: d.pixels, width: d.width, height: d.height, format: d.format };
}

/** A photo's top classes as the catalog stores them. */
function topClassesOf(features: { probs: Float32Array }): Buffer {
  return encodeTopClasses(topClasses(imagenetClassProbs(features.probs)));
}
