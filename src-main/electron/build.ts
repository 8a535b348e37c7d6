import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { projectRoot } from '../engine/paths.ts';

/** Where the preload is built to; electron-builder ships this folder (electron-builder.yml). */
export const preloadOut = join(projectRoot, 'dist', 'electron', 'preload.cjs');
const preloadSource = join(dirname(fileURLToPath(import.meta.url)), 'preload.ts');

/**
 * A sandboxed preload must be one CommonJS file that requires nothing but 'electron': bundle it with esbuild
 * (the compiler tsx itself runs on). The main process runs from source through tsx instead.
 */
export async function buildPreload(outFile = preloadOut): Promise<string> {
  await build({
    entryPoints: [preloadSource],
    outfile: outFile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node22',
    external: ['electron'],
    logLevel: 'warning',
  });
  return outFile;
}

export function preloadStale(outFile = preloadOut): boolean {
  if (!existsSync(outFile)) return true;
  const built = statSync(outFile).mtimeMs;
  const dir = dirname(preloadSource);
  return ['preload.ts', 'bridge.ts'].some((f) => statSync(join(dir, f)).mtimeMs > built);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(await buildPreload());
}
