import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout (or installed app) root: the folder holding package.json and models/. */
export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Committed model artifacts (statistics, manifests) and the built CNN under models/cnn. */
export const modelsDir = join(projectRoot, 'models');

/** Git-ignored caches and build products; never inside ../shared, which is read-only in CI. */
export const cacheDir = process.env.SAGASU_CACHE_DIR ?? join(projectRoot, '.cache');

/**
 * The team's shared folder (data sets, the upstream model mirror) when this machine has one:
 * SAGASU_SHARED, else ../shared beside the checkout. Undefined for a user's installed app.
 */
export function sharedDir(): string | undefined {
  const candidate = process.env.SAGASU_SHARED ?? join(projectRoot, '..', 'shared');
  return existsSync(candidate) ? candidate : undefined;
}
