/**
 * npm run demo:queries [-- --library <dir>] [--json] — the demo library searched the way a new user would,
 * through the engine (the app's own ranking, as every door calls it): each photo's own `shows` caption as the
 * query, cutoff off, and where the photo ranks (top 1 / 3 / 10); then with the calibrated cutoff, how many
 * photos still come back and how often their own photo is among them; then the search screen's suggested
 * queries (src-renderer/i18n/en.json), cutoff on, with the first result and whether the design's photo is first.
 * The demo captions are validation data: nothing here trains or fits anything.
 */
import { realpathSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { Command } from 'commander';
import { runCommand } from '../src-main/cli/run.ts';
import { sampleLibraryDir } from '../src-main/doors/index.ts';
import { Engine } from '../src-main/engine/api/index.ts';
import { projectRoot } from '../src-main/engine/paths.ts';

const options = new Command()
  .option('--library <dir>', 'library folder to use (default: a fresh temporary one, indexed from the demo)')
  .option('--json', 'one JSON object on stdout')
  .parse()
  .opts<{ library?: string; json?: boolean }>();

/** The photo each suggested query was written for, by what it shows. */
const SUGGESTED_PHOTO: Record<'en' | 'ja', Record<string, RegExp>> = {
  en: {
    example1: /dogs? looking out of a window/,
    example2: /koala/,
    example3: /lighthouse/,
    example4: /polar bear/,
  },
  ja: {
    example1: /dogs? looking out of a window/,
    example2: /koala/,
    example3: /giant panda/,
    example4: /polar bear/,
  },
};

// A SagasuError (a model that does not match, a damaged file) is one line naming it, not a stack trace.
await runCommand('demo:queries', async () => {
  const demo = sampleLibraryDir();
  const photos = JSON.parse(await readFile(join(demo, 'attribution.json'), 'utf8')) as Array<{
    file: string;
    shows: string;
  }>;
  const temp = options.library ? undefined : await mkdtemp(join(tmpdir(), 'sagasu-demo-queries-'));
  const libraryDir = resolve(options.library ?? (temp as string));
  const engine = await Engine.open({ libraryDir });
  try {
    const status = await engine.invoke('status', {});
    // Roots are stored by their real path (the demo folder may be a link).
    if (!status.roots.some((r) => r.path === realpathSync(demo)))
      await engine.invoke('roots.add', { path: demo });
    await engine.invoke('index.start', {});
    const indexed = await engine.whenIdle();
    const log = (line: string) => (options.json ? console.error(line) : console.log(line));
    log(`demo:queries: ${indexed.total} photos in ${libraryDir}`);

    const rankOf = async (query: string, file: string, cutoff: null | undefined) => {
      const page = await engine.invoke('search', { query, k: 200, ...(cutoff === null ? { cutoff } : {}) });
      const at = page.hits.findIndex((h) => basename(h.path) === file);
      return { rank: at < 0 ? null : at + 1, returned: page.total };
    };
    let top1 = 0;
    let top3 = 0;
    let top10 = 0;
    let recalled = 0;
    let returned = 0;
    for (const p of photos) {
      const off = await rankOf(p.shows, p.file, null);
      if (off.rank !== null && off.rank <= 1) top1++;
      if (off.rank !== null && off.rank <= 3) top3++;
      if (off.rank !== null && off.rank <= 10) top10++;
      const on = await rankOf(p.shows, p.file, undefined);
      if (on.rank !== null) recalled++;
      returned += on.returned;
    }
    const n = photos.length;
    const pct = (x: number) => `${((100 * x) / n).toFixed(1)} %`;

    const suggested = [];
    for (const lang of ['en', 'ja'] as const) {
      const strings = JSON.parse(
        await readFile(join(projectRoot, 'src-renderer', 'i18n', `${lang}.json`), 'utf8'),
      ) as {
        search?: Record<string, string>;
      };
      for (const [key, query] of Object.entries(strings.search ?? {}).filter(([k]) =>
        /^example\d+$/.test(k),
      )) {
        const page = await engine.invoke('search', { query, k: 5 });
        const first = page.hits[0] ? basename(page.hits[0].path) : null;
        const firstShows = photos.find((p) => p.file === first)?.shows ?? null;
        const wanted = SUGGESTED_PHOTO[lang][key];
        suggested.push({
          lang,
          key,
          query,
          returned: page.total,
          first,
          firstShows,
          right: wanted !== undefined && firstShows !== null && wanted.test(firstShows),
        });
      }
    }
    // The design's original first example, kept as a check of the fused ranking on a query it once failed.
    const window = await engine.invoke('search', { query: 'a dog looking out of a window', k: 5 });
    const windowFirst = window.hits[0] ? basename(window.hits[0].path) : null;
    const windowCheck = {
      query: 'a dog looking out of a window',
      returned: window.total,
      firstShows: photos.find((p) => p.file === windowFirst)?.shows ?? null,
    };
    const result = {
      photos: n,
      cutoffOff: { top1, top3, top10 },
      cutoffOn: { ownPhotoReturned: recalled, meanReturned: returned / n },
      suggested,
      windowCheck,
    };
    if (options.json) console.log(JSON.stringify(result, null, 2));
    else {
      console.log(
        `own caption, cutoff off: top-1 ${top1}/${n} (${pct(top1)}), top-3 ${top3} (${pct(top3)}), top-10 ${top10} (${pct(top10)})`,
      );
      console.log(
        `own caption, calibrated cutoff: own photo returned for ${recalled}/${n} (${pct(recalled)}); ${(returned / n).toFixed(1)} photos returned per query`,
      );
      for (const s of suggested)
        console.log(
          `suggested (${s.lang}) "${s.query}": ${s.returned} photos; first ${s.first ?? '-'} (${s.firstShows ?? 'nothing'}) — ${s.right ? 'right' : 'WRONG'}`,
        );
      console.log(
        `"${windowCheck.query}": ${windowCheck.returned} photos; first: ${windowCheck.firstShows ?? 'nothing'}`,
      );
    }
  } finally {
    await engine.close();
    if (temp) await rm(temp, { recursive: true, force: true });
  }
});
