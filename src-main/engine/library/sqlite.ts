import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { fileErrorClass } from '../errors.ts';
import { nativeDir } from '../paths.ts';

/**
 * better-sqlite3 is a V8-ABI addon (not N-API): one binary loads under one runtime and NODE_MODULE_VERSION
 * only. npm ci builds it in node_modules for the Node that ran npm; builds for other runtimes (Electron's Node,
 * a second Node) live beside it under nativeDir, one folder per target, and the running process picks its own.
 */
export interface NativeTarget {
  runtime: 'node' | 'electron';
  version: string;
  /** NODE_MODULE_VERSION, `process.versions.modules`. */
  abi: string;
  platform: string;
  arch: string;
}

export function currentTarget(
  versions: NodeJS.ProcessVersions = process.versions,
  platform: string = process.platform,
  arch: string = process.arch,
): NativeTarget {
  const electron = versions.electron;
  return electron
    ? { runtime: 'electron', version: electron, abi: versions.modules, platform, arch }
    : { runtime: 'node', version: versions.node, abi: versions.modules, platform, arch };
}

/** `electron-v150-linux-x64`: prebuild-install's naming, so a folder says which binary it holds. */
export function targetName(target: NativeTarget): string {
  return `${target.runtime}-v${target.abi}-${target.platform}-${target.arch}`;
}

export function bindingPath(target: NativeTarget, dir: string = nativeDir): string {
  return join(dir, targetName(target), 'better_sqlite3.node');
}

const require = createRequire(import.meta.url);

/** What npm ci built (or electron-builder rebuilt for Electron inside an installer). */
export function defaultBinding(): string {
  return join(
    dirname(require.resolve('better-sqlite3/package.json')),
    'build',
    'Release',
    'better_sqlite3.node',
  );
}

/**
 * The binary for this target: its own build under dir when setup made one, else node_modules' one. The ABI
 * decides, not the runtime's name: Electron's and Node's module versions never coincide, and a worker thread
 * inside Electron is not guaranteed to see `process.versions.electron`.
 */
export function selectBinding(
  target: NativeTarget = currentTarget(),
  dir: string = nativeDir,
  exists: (file: string) => boolean = existsSync,
): string {
  const other = target.runtime === 'electron' ? 'node' : 'electron';
  const own = [target, { ...target, runtime: other } as const].map((t) => bindingPath(t, dir)).find(exists);
  return own ?? defaultBinding();
}

/** better-sqlite3's binary is missing or built for another runtime; the message says how to get the right one. */
export class NativeModuleError extends fileErrorClass('native-module') {}

/** Why `file` did not load, in words that say what to run. */
export function loadFailure(file: string, error: unknown, target: NativeTarget = currentTarget()): string {
  const message = error instanceof Error ? error.message : String(error);
  const built = /NODE_MODULE_VERSION (\d+)/.exec(message)?.[1];
  const own = bindingPath(target);
  const remedy =
    target.runtime === 'electron'
      ? `\`npm run setup\` on a machine with internet fetches Electron's build into ${own}`
      : `\`npm run native:build -- --node ${process.execPath}\` builds one for this Node into ${own}`;
  if (built)
    return `better-sqlite3 was built for NODE_MODULE_VERSION ${built}, but this is ${target.runtime} ${target.version} (NODE_MODULE_VERSION ${target.abi}); ${remedy}`;
  if (!existsSync(file)) return `better-sqlite3's binary is missing; ${remedy}`;
  return `better-sqlite3 cannot be loaded (${message.split('\n')[0]}); ${remedy}`;
}

let loaded: string | undefined;

/** The binary for this process, loaded once here so that a failure is ours to explain (require caches it). */
function sqliteBinding(): string {
  if (loaded) return loaded;
  const file = selectBinding();
  try {
    require(file);
  } catch (error) {
    throw new NativeModuleError(file, loadFailure(file, error), { cause: error });
  }
  loaded = file;
  return file;
}

/** Every SQLite connection of the engine opens here, with the binary built for the running runtime. */
export function openDatabase(file: string): Database.Database {
  return new Database(file, { nativeBinding: sqliteBinding() });
}
