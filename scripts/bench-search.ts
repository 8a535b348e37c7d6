/**
 * npm run bench:search -- --library <dir> — sentence search through the engine on a real indexed library:
 * sentence → encoded → HNSW → filtered, cut off and merged with keyword hits → results with paths, the way
 * every door calls it. Queries: Flickr8k validation captions (English) and a few Japanese sentences. Written
 * into docs/BENCHMARKS.md (## Sentence search).
 */
import { readFileSync, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { Command } from 'commander';
import { Engine } from '../src-main/engine/api/index.ts';
import { ConceptLexicon } from '../src-main/engine/concepts/index.ts';
import {
  ClassTable,
  conceptScores,
  decodeTopClasses,
  topRows,
  zNormalize,
} from '../src-main/engine/fusion/index.ts';
import { CATALOG_FILE } from '../src-main/engine/library/index.ts';
import { sharedDir } from '../src-main/engine/paths.ts';
import { writeBenchSection } from './bench-doc.ts';

const options = new Command()
  .requiredOption(
    '--library <dir>',
    'an indexed library (e.g. after sagasu index ../shared/data/flickr8k/images)',
  )
  .option('--queries <n>', 'English queries', '200')
  .option(
    '--concept-rows <n>',
    'also time the concept term alone over this many photos (the real rows repeated)',
    '100000',
  )
  .parse()
  .opts<{ library: string; queries: string; conceptRows: string }>();

const shared = sharedDir();
if (!shared) throw new Error('bench:search needs ../shared (Flickr8k validation captions for queries)');
const flickr = join(shared, 'data', 'flickr8k');
const val = new Set(readFileSync(join(flickr, 'Flickr_8k.devImages.txt'), 'utf8').split(/\s+/));
const english = readFileSync(join(flickr, 'Flickr8k.token.txt'), 'utf8')
  .split('\n')
  .filter((line) => val.has(line.split('#')[0] ?? '') && line.includes('#0\t'))
  .map((line) => line.split('\t')[1] as string)
  .slice(0, Number(options.queries));
const japanese = [
  '浜辺を走る犬',
  '雪の中で遊ぶ二匹の犬',
  '自転車に乗る男性',
  '赤い服を着た女の子',
  '水に飛び込む子供たち',
];

const percentile = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)] ?? 0;

const loadAtStart = loadavg()
  .map((x) => x.toFixed(2))
  .join(' ');
const t0 = performance.now();
const engine = await Engine.open({ libraryDir: resolve(options.library) });
const openMs = performance.now() - t0;
const status = await engine.invoke('status', {});

async function time(queries: string[], extra: Record<string, unknown> = {}) {
  const ms: number[] = [];
  let hits = 0;
  for (const query of queries) {
    const start = performance.now();
    const page = await engine.invoke('search', { query, k: 20, ...extra });
    ms.push(performance.now() - start);
    hits += page.hits.length;
  }
  return { ms, hits: hits / queries.length };
}

// The first query of each language pays its encoder's start (Japanese: the dictionary).
const firstEn = await time(english.slice(0, 1));
const firstJa = await time(japanese.slice(0, 1));
const en = await time(english);
const enAll = await time(english, { cutoff: null });
const ja = await time([...japanese, ...japanese, ...japanese, ...japanese]);
const filtered = await time(english.slice(0, 50), { filters: { from: '2000-01-01' } });
await engine.close();

// The concept term alone at library sizes this machine cannot index: the library's real stored classes,
// repeated to n rows, scored and z-normalized per query with the best 500 picked, as rankQuery does.
const db = new Database(join(resolve(options.library), CATALOG_FILE), { readonly: true });
const stored = db.prepare('SELECT top FROM classes').all() as Array<{ top: Buffer }>;
db.close();
const conceptRows = Number(options.conceptRows);
const table = new ClassTable(undefined, conceptRows);
for (let i = 0; i < conceptRows && stored.length > 0; i++)
  table.set(i, decodeTopClasses((stored[i % stored.length] as { top: Buffer }).top));
const lexicon = await ConceptLexicon.load();
const conceptMs: number[] = [];
let withConcepts = 0;
for (const query of english) {
  const start = performance.now();
  const scores = conceptScores(await lexicon.query(query, 'en'), table.view());
  if (scores) {
    withConcepts++;
    topRows(zNormalize(scores, 4), 500);
  }
  conceptMs.push(performance.now() - start);
}
const catalogBytes = statSync(join(resolve(options.library), CATALOG_FILE)).size;
const indexBytes = statSync(join(resolve(options.library), 'vectors.hnsw')).size;

const row = (what: string, r: { ms: number[]; hits: number }) =>
  `| ${what} | ${r.ms.length} | ${percentile(r.ms, 0.5).toFixed(1)} | ${percentile(r.ms, 0.95).toFixed(1)} | ${r.hits.toFixed(1)} |`;
const lines = [
  '## Sentence search through the engine (`npm run bench:search`)',
  '',
  `Machine: ${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown CPU'}; Node ${process.version}; run ${new Date().toISOString().slice(0, 10)}; load average ${loadAtStart} at the start (a shared machine).`,
  `Library: ${status.images.indexed} photos indexed (\`sagasu index ../shared/data/flickr8k/images\`); engine open ${(openMs / 1000).toFixed(1)} s; first English query ${firstEn.ms[0]?.toFixed(0)} ms, first Japanese query ${firstJa.ms[0]?.toFixed(0)} ms (dictionary load).`,
  '',
  'Each call is `search` on the contract, k = 20: tokenize, GRU, HNSW, cutoff, keyword merge, paths from the catalog.',
  '',
  '| queries | n | p50 ms | p95 ms | hits per query |',
  '| --- | ---: | ---: | ---: | ---: |',
  row('Flickr8k val captions, calibrated cutoff', en),
  row('same, cutoff off (`--cutoff none`)', enAll),
  row('same, with a date filter', filtered),
  row('Japanese sentences', ja),
  '',
  `Concepts are on in every row (the fused score of models/search.json): ${stored.length} photos have stored classes. The concept term alone (lexicon lookup, concept score of every photo from its 20 stored classes, z, the 500 best) over ${conceptRows.toLocaleString('en')} photos (the library's ${stored.length} real rows repeated), for the same ${english.length} queries (${withConcepts} name a concept): p50 ${percentile(conceptMs, 0.5).toFixed(1)} ms, p95 ${percentile(conceptMs, 0.95).toFixed(1)} ms.`,
  `Catalog + index: ${(catalogBytes / 2 ** 20).toFixed(1)} MiB + ${(indexBytes / 2 ** 20).toFixed(1)} MiB = ${Math.round((catalogBytes + indexBytes) / status.images.indexed)} B per photo (classes: 60 B of it).`,
  '',
  'Raw vector-index latency at 10k/100k (synthetic) is in the Library section; at 1M it was not run (see there).',
];
console.log(lines.join('\n'));
console.log(`wrote ${await writeBenchSection('search', lines.join('\n'))}`);
