import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import sharp from 'sharp';
import {
  bootstrapLibrary,
  rendererDir,
  rendererStale,
  sampleLibraryDir,
} from '../../src-main/doors/index.ts';
import type { EngineHost } from '../../src-main/engine/api/index.ts';
import { cnnModelPath } from '../../src-main/engine/cnn/index.ts';
import { projectRoot } from '../../src-main/engine/paths.ts';
import { type RunningServer, startServer } from '../../src-main/server/app.ts';

/** Debian's Chromium (installed by npm run setup); SAGASU_CHROMIUM points elsewhere. */
export const CHROMIUM = process.env.SAGASU_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--lang=en-US'];

/** The demo library (npm run demo:build); SAGASU_DEMO_DIR points at another folder of photos with a TSV. */
export const demoDir = process.env.SAGASU_DEMO_DIR ?? sampleLibraryDir();

const PHOTO = /\.(?:jpe?g|png|webp|tiff?|gif|avif|heic)$/i;

export function demoPhotos(dir = demoDir): string[] {
  try {
    return readdirSync(dir)
      .filter((name) => PHOTO.test(name))
      .sort();
  } catch {
    return [];
  }
}

/** '' when the browser tests can run here, else why not (appended to the suite name, so the report says it). */
export function browserSkipNote(): string {
  if (!existsSync(CHROMIUM)) return ` [skipped: no Chromium at ${CHROMIUM}; npm run setup installs Debian's]`;
  if (demoPhotos().length === 0)
    return ` [skipped: no demo library at ${demoDir}; npm run demo:build makes it]`;
  if (!existsSync(cnnModelPath('float')))
    return ' [skipped: the CNN is not built; npm run models:prepare needs ../shared/models or internet]';
  return '';
}

export interface DemoCaption {
  file: string;
  en: string | null;
  ja: string | null;
}

const KANA = /[\u3040-\u30ff\u4e00-\u9fff]/;

/**
 * What each demo photo shows: `attribution.json` (npm run demo:build writes `file` and `shows`, and `showsJa`
 * or `ja` when it has one), else a TSV beside the photos with a file-name column and caption columns.
 */
export function demoCaptions(dir = demoDir): DemoCaption[] {
  const json = join(dir, 'attribution.json');
  if (existsSync(json)) {
    const entries = JSON.parse(readFileSync(json, 'utf8')) as Array<Record<string, unknown>>;
    const text = (v: unknown) => (typeof v === 'string' && v.trim() ? v.trim() : null);
    return entries
      .filter((e) => typeof e.file === 'string' && PHOTO.test(e.file))
      .map((e) => ({ file: e.file as string, en: text(e.shows ?? e.caption), ja: text(e.showsJa ?? e.ja) }));
  }
  const out: DemoCaption[] = [];
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.tsv'))) {
    for (const line of readFileSync(join(dir, name), 'utf8').split(/\r?\n/)) {
      const cells = line.split('\t').map((c) => c.trim());
      const file = cells.find((c) => PHOTO.test(c) && !c.includes(' '));
      if (!file) continue;
      const texts = cells.filter((c) => c !== file && c.includes(' ') && /[a-z]/i.test(c) && !KANA.test(c));
      const ja = cells.find((c) => KANA.test(c)) ?? null;
      const base = file.split('/').pop() as string;
      out.push({ file: base, en: texts.sort((a, b) => b.length - a.length)[0] ?? null, ja });
    }
  }
  return out;
}

/**
 * The query: a demo photo's own caption. The design's example (the spaniels looking out of a window) ranks its
 * photo third only below the engine's calibrated relevance cutoff, so the dog on grass, ranked first by a clear
 * margin, is the one this test holds the whole path to; any caption serves where neither exists.
 */
export const PREFERRED = [/German shepherd dog/i, /\bdogs?\b.*\bwindow\b/i];

export function pickTarget(captions: DemoCaption[]): DemoCaption & { en: string } {
  const usable = captions.filter((c): c is DemoCaption & { en: string } => c.en !== null);
  const preferred = PREFERRED.map((re) => usable.find((c) => re.test(c.en))).find(Boolean);
  const target = preferred ?? usable[0];
  if (!target) throw new Error(`the demo library at ${demoDir} says nothing about its photos`);
  return target;
}

/** Builds the renderer when missing or older than its sources (what npm run serve does). */
export function ensureRendererBuilt(): void {
  if (!rendererStale()) return;
  const run = spawnSync(join(projectRoot, 'node_modules', '.bin', 'vite'), ['build', '--logLevel', 'error'], {
    cwd: projectRoot,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (run.status !== 0) throw new Error(`vite build failed (exit ${run.status})`);
}

export interface RunningApp {
  /** A temp folder holding the photos (a COPY of the demo library: sidecars land here, never in assets/). */
  photosDir: string;
  libraryDir: string;
  engine: EngineHost;
  server: RunningServer;
  /** Stops the server and the engine; removes the temp folder unless keepFiles (for a second launch). */
  close(options?: { keepFiles?: boolean }): Promise<void>;
}

/**
 * Browser mode as `npm run serve` runs it, on a copy of the demo library in a temp folder: the engine in its
 * worker thread, the HTTP server, the first-run bootstrap that adds the photos and starts indexing. `reuse`
 * opens an earlier run's folders instead (a later launch of the same library).
 */
export async function startApp(
  options: { reuse?: { photosDir: string; libraryDir: string } } = {},
): Promise<RunningApp> {
  ensureRendererBuilt();
  const { openEngineWorker } = await import('../../src-main/engine/api/index.ts');
  let photosDir: string;
  let libraryDir: string;
  if (options.reuse) {
    ({ photosDir, libraryDir } = options.reuse);
  } else {
    const tmp = mkdtempSync(join(tmpdir(), 'sagasu-browser-'));
    photosDir = join(tmp, 'sample-library');
    libraryDir = join(tmp, 'library');
    cpSync(demoDir, photosDir, { recursive: true });
    mkdirSync(libraryDir, { recursive: true });
  }
  const engine = await openEngineWorker({ libraryDir }).catch((error: unknown) => {
    if (!options.reuse) rmSync(dirname(photosDir), { recursive: true, force: true });
    throw error;
  });
  const server = await startServer({ engine, rendererDir });
  await bootstrapLibrary(engine, { libraryDir, demoDir: photosDir });
  return {
    photosDir,
    libraryDir,
    engine,
    server,
    async close({ keepFiles = false } = {}) {
      await server.close();
      await engine.close();
      if (!keepFiles) rmSync(dirname(photosDir), { recursive: true, force: true });
    },
  };
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

export const screenshotsDir = join(projectRoot, 'docs', 'screenshots');

/**
 * A screenshot as a small palette PNG (the docs keep each under 300 KB). Written to .cache/screenshots on
 * every run, and into docs/screenshots when SAGASU_UPDATE_SCREENSHOTS=1 (so a test run leaves git clean).
 */
export async function saveScreenshot(png: Buffer, name: string): Promise<{ path: string; bytes: number }> {
  const dirs = [join(projectRoot, '.cache', 'screenshots')];
  if (process.env.SAGASU_UPDATE_SCREENSHOTS === '1') dirs.push(screenshotsDir);
  // A 256-colour palette PNG, dithered: a third of the true-colour size. Fewer colours posterize the photos,
  // and the README's screenshots are how a newcomer first judges the app.
  const small = await sharp(png).png({ palette: true, colours: 256, dither: 1, effort: 10 }).toBuffer();
  let path = '';
  for (const dir of dirs) {
    mkdirSync(dir, { recursive: true });
    path = join(dir, `${name}.png`);
    writeFileSync(path, small);
  }
  return { path, bytes: small.length };
}
