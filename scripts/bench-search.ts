/**
 * npm run bench:search -- --library <dir> — sentence search through the engine on a real indexed library:
 * sentence → encoded → HNSW → filtered, cut off and merged with keyword hits → results with paths, the way
 * every door calls it. Queries: Flickr8k validation captions (English) and a few Japanese sentences. Then the
 * same on a copy of the library grown to --grow-to photos (default 100,000), deleted afterwards. Written
 * into docs/BENCHMARKS.md (## Sentence search).
 */
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { Command } from 'commander';
import { Engine } from '../src-main/engine/api/index.ts';
import { loadSearchCalibration } from '../src-main/engine/calibration/index.ts';
import { ConceptLexicon } from '../src-main/engine/concepts/index.ts';
import {
  ClassTable,
  conceptScores,
  conceptZ,
  decodeTopClasses,
  type FusionWeights,
  topRows,
} from '../src-main/engine/fusion/index.ts';
import {
  CATALOG_FILE,
  DEFAULT_HNSW,
  dequantize,
  quantize,
  VectorIndex,
} from '../src-main/engine/library/index.ts';
import { modelsDir, sharedDir } from '../src-main/engine/paths.ts';
import { quantile, writeBenchSection } from './bench-doc.ts';

const options = new Command()
  .requiredOption(
    '--library <dir>',
    'an indexed library (e.g. after sagasu index ../shared/data/flickr8k/images)',
  )
  .option('--queries <n>', 'English queries', '200')
  .option(
    '--grow-to <n>',
    'also time search on a copy of the library grown to this many photos (0: not)',
    '100000',
  )
  .option(
    '--concept-rows <n>',
    'also time the concept term alone over this many photos (the real rows repeated)',
    '100000',
  )
  .parse()
  .opts<{ library: string; queries: string; conceptRows: string; growTo: string }>();

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

// The engine's first fetch of nearest photos (FIRST_FETCH in api/search.ts).
const FETCH = 1000;

const loadAtStart = loadavg()
  .map((x) => x.toFixed(2))
  .join(' ');
/** Every timed search of the table, through an engine opened on `libraryDir`. */
async function measure(libraryDir: string) {
  const t0 = performance.now();
  const engine = await Engine.open({ libraryDir });
  const openMs = performance.now() - t0;
  const status = await engine.invoke('status', {});
  const time = async (queries: string[], extra: Record<string, unknown> = {}) => {
    const ms: number[] = [];
    let hits = 0;
    for (const query of queries) {
      const start = performance.now();
      const page = await engine.invoke('search', { query, k: 20, ...extra });
      ms.push(performance.now() - start);
      hits += page.hits.length;
    }
    return { ms, hits: hits / queries.length };
  };
  try {
    // The first query of each language pays its encoder's start (Japanese: the dictionary).
    const firstEn = await time(english.slice(0, 1));
    const firstJa = await time(japanese.slice(0, 1));
    return {
      openMs,
      indexed: status.images.indexed,
      firstEn,
      firstJa,
      en: await time(english),
      enAll: await time(english, { cutoff: null }),
      ja: await time([...japanese, ...japanese, ...japanese, ...japanese]),
      filtered: await time(english.slice(0, 50), { filters: { from: '2000-01-01' } }),
    };
  } finally {
    // Closing saves the HNSW file, whose size the table reports.
    await engine.close();
  }
}

/**
 * A copy of the library grown to `rows` photos (beside it, so on the same disk): each real photo again under
 * another name, its vector with a little noise (as hnswTimes below), its classes, dates and keyword row as
 * they are. The engine builds the copy's HNSW graph from the catalog when it opens it, as after a crash.
 */
async function grownCopy(source: string, rows: number): Promise<string> {
  const dir = await mkdtemp(join(dirname(source), 'sagasu-grown-'));
  const src = new Database(join(source, CATALOG_FILE), { readonly: true });
  src.prepare('VACUUM INTO ?').run(join(dir, CATALOG_FILE));
  src.close();
  const db = new Database(join(dir, CATALOG_FILE));
  const ids = (db.prepare('SELECT id FROM images ORDER BY id').all() as Array<{ id: number }>).map(
    (r) => r.id,
  );
  const offset = (ids.at(-1) ?? 0) + 1;
  const columns = (db.prepare('PRAGMA table_info(images)').all() as Array<{ name: string }>)
    .map((c) => c.name)
    .filter((c) => c !== 'id' && c !== 'path')
    .join(', ');
  const vectors = db.prepare('SELECT image_id, model, q, scale FROM embeddings').all() as Array<{
    image_id: number;
    model: string;
    q: Buffer;
    scale: number;
  }>;
  const addVector = db.prepare('INSERT INTO embeddings (image_id, model, scale, q) VALUES (?, ?, ?, ?)');
  let seed = 7;
  const noise = () => {
    seed = (seed * 16807) % 2147483647;
    return (seed / 2147483647 - 0.5) * 0.02;
  };
  db.transaction(() => {
    for (let k = 1, total = ids.length; total < rows; k++) {
      const last = ids[Math.min(ids.length, rows - total) - 1] as number;
      const shift = k * offset;
      db.prepare(
        `INSERT INTO images (id, path, ${columns}) SELECT id + ?, path || '#' || ?, ${columns} FROM images WHERE id <= ?`,
      ).run(shift, k, last);
      db.prepare(
        'INSERT INTO classes (image_id, model, top) SELECT image_id + ?, model, top FROM classes WHERE image_id <= ?',
      ).run(shift, last);
      db.prepare(
        'INSERT INTO keywords (rowid, name, folders, tags) SELECT rowid + ?, name, folders, tags FROM keywords WHERE rowid <= ?',
      ).run(shift, last);
      for (const v of vectors) {
        if (v.image_id > last) continue;
        const { q, scale } = quantize(dequantize(v.q, v.scale).map((x) => x + noise()));
        addVector.run(v.image_id + shift, v.model, scale, q);
      }
      total += ids.filter((id) => id <= last).length;
    }
    db.prepare("UPDATE meta SET value = 'null' WHERE key = 'hnsw'").run();
  })();
  db.close();
  return dir;
}

const library = resolve(options.library);
const atLibrarySize = await measure(library);
const { en, enAll, ja, filtered, firstEn, firstJa, openMs } = atLibrarySize;
const status = { images: { indexed: atLibrarySize.indexed } };
const growTo = Number(options.growTo);
let grown: (Awaited<ReturnType<typeof measure>> & { bytes: number }) | null = null;
if (growTo > atLibrarySize.indexed) {
  const dir = await grownCopy(library, growTo);
  try {
    const m = await measure(dir);
    grown = {
      ...m,
      bytes: statSync(join(dir, CATALOG_FILE)).size + statSync(join(dir, 'vectors.hnsw')).size,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// The concept term alone at library sizes this machine cannot index: the library's real stored classes,
// repeated to n rows, scored and z-normalized per query with the best 500 picked, as rankQuery does.
const db = new Database(join(resolve(options.library), CATALOG_FILE), { readonly: true });
const stored = db.prepare('SELECT top FROM classes').all() as Array<{ top: Buffer }>;
db.close();
const conceptRows = Number(options.conceptRows);
const lexicon = await ConceptLexicon.load();
const shipped = (await loadSearchCalibration('fne', { modelDir: join(modelsDir, 'joint', 'fne') }))?.fusion
  ?.weights;
if (!shipped)
  throw new Error('bench:search needs the fne fusion weights in models/search.json (npm run calibrate)');
const weights: FusionWeights = shipped;
async function conceptTerm(rows: number) {
  const table = new ClassTable(undefined, rows);
  for (let i = 0; i < rows && stored.length > 0; i++)
    table.set(i, decodeTopClasses((stored[i % stored.length] as { top: Buffer }).top));
  // Built once after the library changes; the first query after indexing pays it.
  const buildStart = performance.now();
  table.view().byClass();
  const buildMs = performance.now() - buildStart;
  const ms: number[] = [];
  let withConcepts = 0;
  for (const query of english) {
    const start = performance.now();
    const scores = conceptScores(await lexicon.query(query, 'en'), table.view(), weights.floor);
    if (scores) {
      withConcepts++;
      topRows(conceptZ(scores, weights), 500);
    }
    ms.push(performance.now() - start);
  }
  return { ms, withConcepts, buildMs };
}
const atLibrary = await conceptTerm(stored.length);
const atRows = await conceptTerm(conceptRows);
// HNSW at the fetch search asks for (1000 nearest), on the library's real vectors and on n of them (each
// real vector again with a little noise, so the graph keeps their clusters). Queries: photo vectors, since
// a query's own vector comes from inside the engine.
const db2 = new Database(join(resolve(options.library), CATALOG_FILE), { readonly: true });
const vectors = (
  db2.prepare('SELECT q, scale FROM embeddings').all() as Array<{ q: Buffer; scale: number }>
).map((r) => dequantize(r.q, r.scale));
db2.close();
function hnswTimes(rows: number): number[] {
  const dim = vectors[0]?.length ?? 0;
  const index = VectorIndex.create(dim, rows, DEFAULT_HNSW);
  let seed = 1;
  const noise = () => {
    seed = (seed * 16807) % 2147483647;
    return (seed / 2147483647 - 0.5) * 0.02;
  };
  for (let i = 0; i < rows; i++) {
    const base = vectors[i % vectors.length] as Float32Array;
    index.upsert(i, i < vectors.length ? base : base.map((x) => x + noise()));
    if (i > 0 && i % 20000 === 0) console.log(`  hnsw: built ${i}/${rows}`);
  }
  return english.map((_, i) => {
    const start = performance.now();
    index.search(vectors[(i * 37) % vectors.length] as Float32Array, FETCH);
    return performance.now() - start;
  });
}
const hnswAtLibrary = hnswTimes(vectors.length);
const hnswAtRows = hnswTimes(conceptRows);
// Per query: the engine's time on this library with its concept term and its HNSW search swapped for those
// at n photos; the rest of a search (GRU, ≤ 500 candidates read from the catalog) does not grow with n.
const estimated = {
  ms: en.ms.map(
    (ms, i) =>
      ms -
      (atLibrary.ms[i] as number) +
      (atRows.ms[i] as number) -
      (hnswAtLibrary[i] as number) +
      (hnswAtRows[i] as number),
  ),
  hits: en.hits,
};
const catalogBytes = statSync(join(resolve(options.library), CATALOG_FILE)).size;
const indexBytes = statSync(join(resolve(options.library), 'vectors.hnsw')).size;

const row = (what: string, r: { ms: number[]; hits: number }) =>
  `| ${what} | ${r.ms.length} | ${quantile(r.ms, 0.5).toFixed(1)} | ${quantile(r.ms, 0.95).toFixed(1)} | ${r.hits.toFixed(1)} |`;
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
  row(`Flickr8k val captions, estimated at ${conceptRows.toLocaleString('en')} photos`, estimated),
  ...(grown
    ? [
        row(
          `Flickr8k val captions, the library grown to ${grown.indexed.toLocaleString('en')} photos (measured)`,
          grown.en,
        ),
        row('same, cutoff off', grown.enAll),
        row('same, with a date filter', grown.filtered),
        row('Japanese sentences', grown.ja),
      ]
    : []),
  '',
  `Concepts are on in every row (the fused score of models/search.json): ${stored.length} photos have stored classes. The concept term alone (lexicon lookup, concept score of every photo from the stored entries of the classes named, z, the 500 best), for the same ${english.length} queries (${atRows.withConcepts} name a concept): p50 / p95 ${quantile(atLibrary.ms, 0.5).toFixed(1)} / ${quantile(atLibrary.ms, 0.95).toFixed(1)} ms over the library's ${stored.length} photos, ${quantile(atRows.ms, 0.5).toFixed(1)} / ${quantile(atRows.ms, 0.95).toFixed(1)} ms over ${conceptRows.toLocaleString('en')} (the real rows repeated). Its grouping of the entries by class, built once after the library changes, takes ${atLibrary.buildMs.toFixed(1)} ms and ${atRows.buildMs.toFixed(1)} ms.`,
  `HNSW, ${FETCH} nearest (the first fetch of a search), photo vectors as queries: p50 / p95 ${quantile(hnswAtLibrary, 0.5).toFixed(1)} / ${quantile(hnswAtLibrary, 0.95).toFixed(1)} ms over the library's ${vectors.length} vectors, ${quantile(hnswAtRows, 0.5).toFixed(1)} / ${quantile(hnswAtRows, 0.95).toFixed(1)} ms over ${conceptRows.toLocaleString('en')} (each real vector again with noise).`,
  `The estimated row is, per query, the engine's time on this library with its concept term and its HNSW search replaced by those at ${conceptRows.toLocaleString('en')} photos; the rest of a search (GRU, at most 500 candidates read from the catalog) does not grow with the library.`,
  `Catalog + index: ${(catalogBytes / 2 ** 20).toFixed(1)} MiB + ${(indexBytes / 2 ** 20).toFixed(1)} MiB = ${Math.round((catalogBytes + indexBytes) / status.images.indexed)} B per photo (classes: 60 B of it).`,
  ...(grown
    ? [
        `The date-filter rows keep the filter's photo set from their first query on (until the library changes): that first query took ${grown.filtered.ms[0]?.toFixed(0)} ms at ${grown.indexed.toLocaleString('en')} photos, ${filtered.ms[0]?.toFixed(0)} ms on the library.`,
        `The grown rows: a copy of the library with each photo again under another name (its vector with the same noise as the HNSW line above, its stored classes, dates and names as they are) up to ${grown.indexed.toLocaleString('en')} photos, searched through the engine like the library itself; opening it built the HNSW graph from the catalog in ${(grown.openMs / 1000).toFixed(0)} s; catalog + index ${Math.round(grown.bytes / grown.indexed)} B per photo. The photos are repeats, so a query's concept and keyword candidates are too: what it measures is the engine's work at that size, not retrieval quality.`,
      ]
    : []),
  '',
  'Raw vector-index latency at 10k/100k (synthetic) is in the Library section; at 1M it was not run (see there).',
];
console.log(lines.join('\n'));
console.log(`wrote ${await writeBenchSection('search', lines.join('\n'))}`);
