import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout (or installed app) root: the folder holding package.json and models/. */
export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Committed model artifacts (statistics, manifests) and the built CNN under models/cnn. SAGASU_MODELS_DIR points
 * an installed app at its unpacked resources (a folder inside app.asar cannot hold the built CNN).
 */
export const modelsDir = process.env.SAGASU_MODELS_DIR ?? join(projectRoot, 'models');

/** Git-ignored caches and build products; never inside ../shared, which is read-only in CI. */
export const cacheDir = process.env.SAGASU_CACHE_DIR ?? join(projectRoot, '.cache');

/**
 * better-sqlite3 builds for runtimes other than the one npm ci built for (Electron's Node, a second Node), one
 * folder per target (`npm run native:build`, run by setup). Beside the checkout, never under SAGASU_CACHE_DIR:
 * an installed app has none, and uses the binary electron-builder rebuilt in node_modules. SAGASU_NATIVE_DIR
 * points elsewhere.
 */
export const nativeDir = process.env.SAGASU_NATIVE_DIR ?? join(projectRoot, '.cache', 'native');

/**
 * The team's shared folder (data sets, the upstream model mirror) when this machine has one:
 * SAGASU_SHARED, else ../shared beside the checkout. Undefined for a user's installed app.
 */
export function sharedDir(): string | undefined {
  const candidate = process.env.SAGASU_SHARED ?? join(projectRoot, '..', 'shared');
  return existsSync(candidate) ? candidate : undefined;
}
