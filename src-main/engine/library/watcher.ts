import { statSync } from 'node:fs';
import { sep } from 'node:path';
import { watch as chokidarWatch, type FSWatcher } from 'chokidar';
import type { Catalog } from './catalog.ts';
import type { Indexer } from './indexer.ts';
import { isDir, type Roots } from './roots.ts';
import { skippedName } from './walker.ts';

/**
 * Keeps the catalog current while the app runs: changes under the roots (debounced) trigger an incremental
 * run; a root that vanishes goes offline (nothing deleted) and is picked up again when it returns.
 */
export class Watcher {
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private offlinePoll: NodeJS.Timeout | null = null;
  private dirty = false;
  private onChange: ((imageIds: number[]) => void) | undefined;
  /** start() was called and stop() was not: roots added later are watched too. */
  private watching = false;

  constructor(
    private readonly catalog: Catalog,
    private readonly roots: Roots,
    private readonly indexer: Indexer,
  ) {}

  async start(onChange?: (imageIds: number[]) => void): Promise<void> {
    this.onChange = onChange;
    this.watching = true;
    await this.rewatch();
    let heldLook = this.heldLook();
    this.offlinePoll ??= setInterval(() => {
      const before = new Set(this.roots.offline);
      this.roots.refresh();
      const back = [...before].filter((id) => !this.roots.offline.has(id));
      const lost = [...this.roots.offline].filter((id) => !before.has(id));
      // A held root comes back by a walk: a disk mounted on its folder changes the folder's device and inode.
      const look = this.heldLook();
      const remounted = look !== heldLook;
      heldLook = look;
      if (back.length > 0 || lost.length > 0 || remounted) {
        void this.rewatch();
        this.schedule();
      }
    }, 2000);
    this.offlinePoll.unref();
  }

  async stop(): Promise<void> {
    this.watching = false;
    if (this.timer) clearTimeout(this.timer);
    if (this.offlinePoll) clearInterval(this.offlinePoll);
    this.timer = null;
    this.offlinePoll = null;
    const watcher = this.watcher;
    this.watcher = null;
    await watcher?.close();
  }

  /** Watches the roots as they are now (after one is added or removed); nothing before start(). */
  async rewatch(): Promise<void> {
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
    watcher.on('all', () => this.schedule());
    // A vanished folder can surface as a watcher error (EACCES, ENOENT): the offline poll handles roots.
    watcher.on('error', () => this.schedule());
    this.watcher = watcher;
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
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

  private schedule(): void {
    if (this.indexer.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      const running = this.indexer.running;
      if (running) {
        this.dirty = true;
        void running.finally(() => {
          if (this.dirty) {
            this.dirty = false;
            this.schedule();
          }
        });
        return;
      }
      this.indexer
        .run()
        .then(() => {
          if (this.indexer.lastChanged.length > 0) this.onChange?.(this.indexer.lastChanged);
        })
        .catch(() => {});
    }, 500);
  }
}
