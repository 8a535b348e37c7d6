/**
 * npm run bench:search -- --library <dir> — sentence search through the engine on a real indexed library:
 * sentence → encoded → HNSW → filtered, cut off and merged with keyword hits → results with paths, the way
 * every door calls it. Queries: Flickr8k validation captions (English) and a few Japanese sentences. Written
 * into docs/BENCHMARKS.md (## Sentence search).
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { Engine } from '../src-main/engine/api/index.ts';
import { sharedDir } from '../src-main/engine/paths.ts';
import { writeBenchSection } from './bench-doc.ts';

const options = new Command()
  .requiredOption(
    '--library <dir>',
    'an indexed library (e.g. after sagasu index ../shared/data/flickr8k/images)',
  )
  .option('--queries <n>', 'English queries', '200')
  .parse()
  .opts<{ library: string; queries: string }>();

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

const row = (what: string, r: { ms: number[]; hits: number }) =>
  `| ${what} | ${r.ms.length} | ${percentile(r.ms, 0.5).toFixed(1)} | ${percentile(r.ms, 0.95).toFixed(1)} | ${r.hits.toFixed(1)} |`;
const lines = [
  '## Sentence search through the engine (`npm run bench:search`)',
  '',
  `Machine: ${cpus().length} cores, ${cpus()[0]?.model ?? 'unknown CPU'}; Node ${process.version}; run ${new Date().toISOString().slice(0, 10)}.`,
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
  'Raw vector-index latency at 10k/100k (synthetic) is in the Library section; at 1M it was not run (see there).',
];
console.log(lines.join('\n'));
console.log(`wrote ${await writeBenchSection('search', lines.join('\n'))}`);
