import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import type { RootInfo } from '../../contract/index.ts';
import { ArgumentError } from '../errors.ts';
import type { Catalog } from './catalog.ts';
import type { SearchIndex } from './search-index.ts';

/**
 * The library folders and which of them are offline: a folder that is gone (an unplugged disk) or that a walk
 * held (see Indexer.reconcile) keeps its photos in the catalog, not offered until it is back.
 */
export class Roots {
  /** Ids of the roots offline now; the indexer and the watcher's poll keep it current. */
  readonly offline = new Set<number>();

  constructor(
    private readonly catalog: Catalog,
    /** Where a removed root's photos leave search. */
    private readonly search: SearchIndex,
    /** The roots changed (added, removed): the watcher watches the new set. */
    private readonly changed: () => void,
  ) {
    this.refresh();
  }

  add(path: string): RootInfo {
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
    this.changed();
    return this.list().find((r) => r.id === id) as RootInfo;
  }

  remove(rootId: number): { removedImages: number } {
    if (!this.catalog.root(rootId)) throw new ArgumentError('rootId', `no library folder has id ${rootId}`);
    const ids = this.catalog.imageIdsOfRoot(rootId);
    const removedImages = this.catalog.deleteRoot(rootId);
    for (const id of ids) this.search.remove(id);
    this.offline.delete(rootId);
    this.changed();
    return { removedImages };
  }

  list(): RootInfo[] {
    this.refresh();
    return this.catalog.rootInfos(offlineReason);
  }

  /** False for the photos of an unplugged disk: kept in the catalog, not offered. */
  online(rootId: number): boolean {
    return !this.offline.has(rootId);
  }

  /** A held root stays offline until a walk takes it as it is again (see Indexer.reconcile). */
  refresh(): void {
    for (const root of this.catalog.rootRows()) {
      if (isDir(root.path) && this.catalog.rootWalk(root.id).held === null) this.offline.delete(root.id);
      else this.offline.add(root.id);
    }
  }

  /** The photos of the offline roots, or null when every root is online. */
  hiddenImageIds(): Set<number> | null {
    if (this.offline.size === 0) return null;
    const ids = new Set<number>();
    for (const rootId of this.offline) for (const id of this.catalog.imageIdsOfRoot(rootId)) ids.add(id);
    return ids;
  }
}

/** Why a root is offline: its folder is gone, or a walk held it (see Indexer.reconcile); null when online. */
export function offlineReason(path: string, held: string | null): string | null {
  return isDir(path) ? held : 'the folder is missing (an unplugged disk?); its photos are kept';
}

export function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

export function inside(path: string, folder: string): boolean {
  const rel = relative(folder, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}
