import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../engine/paths.ts';
import { rendererDir } from './config.ts';

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

/** Missing, or older than any renderer source: then `npm run serve` builds it first. */
export function rendererStale(root = projectRoot, built = rendererDir): boolean {
  const index = join(built, 'index.html');
  if (!existsSync(index)) return true;
  const sources = Math.max(
    newestMtime(join(root, 'src-renderer')),
    newestMtime(join(root, 'vite.config.ts')),
  );
  return sources > statSync(index).mtimeMs;
}

/**
 * Builds the renderer with the project's own script when the checkout has sources to build from (an installed
 * app ships the built files and no sources). Build output goes to stderr, so stdout stays the URL alone.
 */
export function ensureRenderer(log: (line: string) => void): void {
  if (!existsSync(join(projectRoot, 'src-renderer')) || !rendererStale()) return;
  const scripts = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')).scripts ?? {};
  if (!scripts['build:renderer']) {
    log('the renderer is not built and package.json has no build:renderer script');
    return;
  }
  log('building the renderer (npm run build:renderer)…');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const run = spawnSync(npm, ['run', '--silent', 'build:renderer'], {
    cwd: projectRoot,
    stdio: ['ignore', 2, 2],
    shell: process.platform === 'win32',
  });
  if (run.status !== 0) log(`the renderer build failed (exit ${run.status}); the page will say so`);
}
