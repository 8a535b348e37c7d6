import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { SingleBar } from 'cli-progress';
import { type Command, Option } from 'commander';
import {
  type Caption,
  FILE_TYPES,
  type IndexProgress,
  LANGS,
  type SearchFilters,
  type SearchPage,
  type Status,
  type Tag,
} from '../contract/index.ts';
import { defaultLibraryDir } from '../doors/index.ts';
import { type EngineHost, openEngine, readOnlyStatus } from '../engine/api/index.ts';
import { ArgumentError, SagasuError } from '../engine/errors.ts';
import { writeError } from '../engine/files.ts';

interface Common {
  library?: string;
  json?: boolean;
  modelSet?: string;
}

const libraryOption = () =>
  new Option('--library <dir>', 'the library folder (catalog, index, thumbnails)').default(
    undefined,
    `$SAGASU_LIBRARY_DIR or ${defaultLibraryDir()}`,
  );

const libraryDirOf = (options: Common) => (options.library ? resolve(options.library) : defaultLibraryDir());

async function withEngine<T>(options: Common, body: (engine: EngineHost) => Promise<T>): Promise<T> {
  const engine = await openEngine({
    libraryDir: libraryDirOf(options),
    ...(options.modelSet === undefined ? {} : { modelSet: options.modelSet }),
  });
  try {
    return await body(engine);
  } finally {
    await engine.close();
  }
}

const print = (value: unknown) => console.log(JSON.stringify(value, null, 2));

function intOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n)) throw new ArgumentError(name, `expected a whole number, got "${value}"`);
  return n;
}

interface SearchOptions extends Common {
  k: string;
  offset: string;
  folder?: string;
  from?: string;
  to?: string;
  type?: string[];
  cutoff?: string;
  lang: (typeof LANGS)[number];
}

function filtersOf(options: SearchOptions): SearchFilters {
  const filters: SearchFilters = {};
  if (options.folder) filters.folder = resolve(options.folder);
  if (options.from) filters.from = options.from;
  if (options.to) filters.to = options.to;
  if (options.type) filters.types = options.type as SearchFilters['types'];
  return filters;
}

function printPage(page: SearchPage, options: Common): void {
  if (options.json) {
    print(page);
    return;
  }
  if (page.note) console.error(page.note);
  else if (page.unknownWords.length) console.error(`unknown to the model: ${page.unknownWords.join(', ')}`);
  if (page.hits.length === 0 && !page.note)
    console.error(
      page.cutoff === null
        ? 'no photos'
        : `no photo scores above the relevance cutoff ${page.cutoff.toFixed(3)}`,
    );
  for (const [i, hit] of page.hits.entries())
    console.log(
      `${String(i + 1).padStart(3)}  ${hit.score.toFixed(3)}  ${hit.path}${hit.via === 'vector' ? '' : `  (${hit.via})`}`,
    );
}

function printDescriptions(captions: Caption[], tags: Tag[]): void {
  for (const c of captions) console.log(`${c.score === null ? '  user' : c.score.toFixed(3)}  ${c.text}`);
  if (tags.length)
    console.log(
      `tags: ${tags.map((t) => (t.confidence === null ? t.text : `${t.text} (${t.confidence.toFixed(2)})`)).join(', ')}`,
    );
}

/** A progress bar on a terminal; one line per state change elsewhere (logs, CI). */
function progressReporter(): { update(p: IndexProgress): void; stop(): void } {
  if (!process.stderr.isTTY) {
    let last = '';
    return {
      update(p) {
        if (p.state !== last) console.error(`index: ${p.state} ${p.done}/${p.total}`);
        last = p.state;
      },
      stop() {},
    };
  }
  const bar = new SingleBar({
    format: '{bar} {value}/{total} | {rate} img/s | ETA {eta_h} | {file}',
    stream: process.stderr,
    hideCursor: true,
  });
  let started = false;
  return {
    update(p) {
      const payload = {
        rate: p.imagesPerSecond.toFixed(1),
        eta_h: p.etaSeconds === null ? '?' : `${Math.round(p.etaSeconds)}s`,
        file: p.currentFile ?? '',
      };
      if (!started) bar.start(Math.max(p.total, 1), p.done, payload);
      started = true;
      bar.setTotal(Math.max(p.total, 1));
      bar.update(p.done, payload);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

export function registerLibrary(program: Command): void {
  program
    .command('index')
    .description('add a folder to the library (once) and index what is new, changed, moved or gone')
    .argument('[dir]', 'a folder of photos; without one, every folder already in the library')
    .addOption(libraryOption())
    .option('--json', 'print the final progress as JSON')
    .option(
      '--remove-missing',
      'photos gone from a folder that looks unmounted (emptied, another disk, most gone at once) are really gone: remove them',
    )
    .option(
      '--model-set <name>',
      'move the library to this model set (kept as its choice; sagasu status lists them): its vectors are made in this run',
    )
    .action(async (dir: string | undefined, options: Common & { removeMissing?: boolean }) => {
      await withEngine(options, async (engine) => {
        let rootId: number | undefined;
        if (dir) {
          const path = resolve(dir);
          const { roots } = await engine.invoke('status', {});
          rootId = roots.find((r) => r.path === path)?.id ?? (await engine.invoke('roots.add', { path })).id;
        }
        const reporter = progressReporter();
        const off = engine.on('index.progress', (p) => reporter.update(p));
        const cancel = () => void engine.invoke('index.cancel', {});
        process.once('SIGINT', cancel);
        try {
          await engine.invoke('index.start', {
            ...(rootId === undefined ? {} : { rootId }),
            removeMissing: options.removeMissing === true,
          });
          const final = await engine.whenIdle();
          reporter.stop();
          if (options.json) print(final);
          else
            console.error(
              `index: ${final.state}: ${final.done} of ${final.total} photos, ${final.failed} could not be read (sagasu status lists them)`,
            );
          const { roots } = await engine.invoke('status', {});
          for (const r of roots)
            if (r.offlineReason !== null && (rootId === undefined || r.id === rootId))
              console.error(`index: ${r.path} is offline: ${r.offlineReason}`);
          // Offline with its folder there: held back by the walk, which only the person can overrule.
          if (roots.some((r) => !r.online && existsSync(r.path)))
            console.error('index: if those photos are really gone, run sagasu index --remove-missing');
        } finally {
          off();
          process.off('SIGINT', cancel);
        }
      });
    });

  const searchLike = (name: string, description: string, argument: string) =>
    program
      .command(name)
      .description(description)
      .argument(argument)
      .addOption(libraryOption())
      .option('-k, --k <n>', 'results per page', '20')
      .option('--offset <n>', 'skip the first n results', '0')
      .option('--folder <dir>', 'only photos under this folder')
      .option('--from <date>', 'taken on or after (YYYY-MM-DD)')
      .option('--to <date>', 'taken on or before (YYYY-MM-DD)')
      .addOption(new Option('--type <type...>', 'only these file types').choices(FILE_TYPES))
      .option('--json', 'one JSON object on stdout');

  searchLike('search', 'photos that match a sentence, best first', '<sentence>')
    .option('--cutoff <score|none>', 'minimum score (default: calibrated on Flickr8k; none: every photo)')
    .addOption(new Option('--lang <lang>', 'the sentence language').choices(LANGS).default('auto'))
    .action(async (sentence: string, options: SearchOptions) => {
      const cutoff =
        options.cutoff === undefined ? undefined : options.cutoff === 'none' ? null : Number(options.cutoff);
      if (cutoff !== undefined && cutoff !== null && !Number.isFinite(cutoff))
        throw new ArgumentError('--cutoff', `expected a number or "none", got "${options.cutoff}"`);
      await withEngine(options, async (engine) => {
        const page = await engine.invoke('search', {
          query: sentence,
          lang: options.lang,
          k: intOption('-k', options.k) as number,
          offset: intOption('--offset', options.offset) as number,
          filters: filtersOf(options),
          ...(cutoff === undefined ? {} : { cutoff }),
        });
        printPage(page, options);
      });
    });

  searchLike('similar', 'photos that look like a photo (indexed or not)', '<image>').action(
    async (image: string, options: SearchOptions) => {
      await withEngine(options, async (engine) => {
        const page = await engine.invoke('similar', {
          path: resolve(image),
          k: intOption('-k', options.k) as number,
          offset: intOption('--offset', options.offset) as number,
          filters: filtersOf(options),
        });
        printPage(page, options);
      });
    },
  );

  for (const what of ['caption', 'tags'] as const)
    program
      .command(what)
      .description(
        what === 'caption'
          ? 'the 5 best captions for a photo, with scores'
          : 'keyword tags for a photo, with confidence',
      )
      .argument('<image>')
      .addOption(libraryOption())
      .option('--json', 'one JSON object on stdout')
      .action(async (image: string, options: Common) => {
        await withEngine(options, async (engine) => {
          const { captions, tags } = await engine.invoke('image.describe', { path: resolve(image) });
          if (options.json) return print(what === 'caption' ? { captions } : { tags });
          if (what === 'caption') printDescriptions(captions, []);
          else for (const t of tags) console.log(`${(t.confidence ?? 1).toFixed(2)}  ${t.text}`);
        });
      });

  program
    .command('status')
    .description('folders, photo counts, photos that could not be read, the model')
    .addOption(libraryOption())
    .option('--json', 'one JSON object on stdout')
    .action(async (options: Common) => {
      const show = (status: Status) => {
        if (options.json) return print(status);
        const { images, model, failures, modelSets } = status;
        console.log(`model ${model.name} (${model.dim}-d, ${model.languages.join(' + ')})`);
        if (modelSets.chosen !== modelSets.active)
          console.log(`moving to model set ${modelSets.chosen}: ${modelSets.pending} photos to go`);
        console.log(`model sets: ${modelSets.available.map((s) => `${s.name} (${s.backbone})`).join(', ')}`);
        console.log(
          `${images.indexed} indexed, ${images.pending} pending, ${failures.length} could not be read`,
        );
        for (const r of status.roots)
          console.log(
            `  ${r.online ? '' : '[offline] '}${r.path}: ${r.images} photos, ${r.failed} failed${r.offlineReason === null ? '' : ` (${r.offlineReason})`}`,
          );
        for (const f of failures) console.log(`  could not read ${f.path}: ${f.reason}`);
      };
      try {
        await withEngine(options, async (engine) => show(await engine.invoke('status', {})));
      } catch (error) {
        // Looking needs no writing: a library on a read-only disk is shown as it was stored.
        if (!(error instanceof SagasuError) || error.code !== 'library-read-only') throw error;
        console.error(`status: ${error.subject}: read-only, shown as stored (nothing can be indexed there)`);
        show(await readOnlyStatus({ libraryDir: libraryDirOf(options) }));
      }
    });

  program
    .command('export')
    .description('paths, captions and tags as CSV or JSON, or accepted ones into XMP sidecars')
    .addOption(
      new Option('--format <format>', 'output').choices(['csv', 'json', 'xmp']).makeOptionMandatory(),
    )
    .option('-o, --output <file>', 'write to a file instead of stdout (csv, json)')
    .addOption(libraryOption())
    .action(async (options: Common & { format: 'csv' | 'json' | 'xmp'; output?: string }) => {
      await withEngine(options, async (engine) => {
        if (options.format !== 'xmp') {
          const { text } = await engine.invoke('export', { format: options.format });
          if (options.output)
            await writeFile(options.output, text).catch((error: unknown) => {
              throw writeError(resolve(options.output as string), error);
            });
          else process.stdout.write(text);
          return;
        }
        const { written, failed } = await engine.invoke('xmp.write', {});
        console.error(
          written.length
            ? `export: wrote ${written.length} XMP sidecars`
            : 'export: no photo has an accepted tag or caption yet',
        );
        for (const f of failed) console.error(`export: ${f.path}: ${f.reason}`);
        if (failed.length) process.exitCode = 1;
      });
    });
}
