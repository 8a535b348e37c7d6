import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { cacheDir, projectRoot } from '../engine/paths.ts';

/**
 * Where a person's library (catalog, vector index, thumbnails) lives: SAGASU_LIBRARY_DIR, else the platform's
 * per-user data folder, so the CLI, the server and the desktop app open the same library. A variable set
 * but empty counts as unset, and so does a relative XDG_DATA_HOME: the XDG Base Directory spec says both.
 */
export function defaultLibraryDir(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
  home: string = homedir(),
): string {
  if (env.SAGASU_LIBRARY_DIR) return resolve(env.SAGASU_LIBRARY_DIR);
  if (platform === 'win32') return join(env.APPDATA || join(home, 'AppData', 'Roaming'), 'Sagasu');
  if (platform === 'darwin') return join(home, 'Library', 'Application Support', 'Sagasu');
  const xdg = env.XDG_DATA_HOME && isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : undefined;
  return join(xdg ?? join(home, '.local', 'share'), 'sagasu');
}

/** The bundled demo photos (npm run demo:build); an installed app finds them under its resources folder. */
export function sampleLibraryDir(resourcesPath?: string): string {
  return resourcesPath
    ? join(resourcesPath, 'sample-library')
    : join(projectRoot, 'assets', 'sample-library');
}

/** The built Svelte renderer (npm run build:renderer). */
export const rendererDir = join(cacheDir, 'renderer');

/**
 * The renderer's Content-Security-Policy, the same in both doors: scripts only from the app itself, no
 * plugins, no framing. Inline styles stay allowed because Svelte's style bindings and the virtual grid
 * position elements with style attributes; inline scripts do not.
 */
export function contentSecurityPolicy(extra: { img?: string[]; connect?: string[] } = {}): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    ['img-src', "'self'", 'data:', 'blob:', ...(extra.img ?? [])].join(' '),
    "font-src 'self' data:",
    ['connect-src', "'self'", ...(extra.connect ?? [])].join(' '),
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}
