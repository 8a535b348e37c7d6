/**
 * npm run bench:text — speed of the sentence side, for docs/BENCHMARKS.md ("Japanese query path"): the
 * Japanese dictionary's load time, memory and size on disk, the tokenizer's rate on the Flickr8k Japanese
 * captions, and one-query latency (tokenizer + GRU, p50/p95) of the Japanese and English encoders. Prints a
 * Markdown section; `--write` also replaces that section of docs/BENCHMARKS.md.
 */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { readJapaneseCaptions } from '../src-main/engine/datasets/prepare-ja.ts';
import { JointModel, jointModelsDir } from '../src-main/engine/joint/index.ts';
import { JapaneseTokenizer, kuromojiDictDir } from '../src-main/engine/text/index.ts';
import { benchLog, quantile, writeBenchSection } from './bench-doc.ts';

const LOADS = Number(process.env.BENCH_LOADS ?? 3);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 300);
const { lines, log } = benchLog();
const du = (path: string) =>
  Number(execFileSync('du', ['-sk', path], { encoding: 'utf8' }).split('\t')[0]) / 1024;

// Queries people type (written for this benchmark), from two words to a long sentence.
const JA_QUERIES = [
  '犬',
  '浜辺を走る犬',
  '雪の中で遊ぶ二匹の犬',
  'iPhoneで撮った犬',
  '赤いシャツを着た男の子が公園で自転車に乗っている',
  '水に飛び込む黒い犬',
  '山の上に立っている男性',
  'ボールを追いかける茶色の犬と白い犬',
];
const EN_QUERIES = [
  'dog',
  'a dog running on the beach',
  'two dogs playing in the snow',
  'a dog photographed with an iphone',
  'a boy in a red shirt rides a bike in the park',
  'a black dog jumps into the water',
  'a man standing on top of a mountain',
  'a brown dog and a white dog chase a ball',
];

async function latency(model: JointModel, lang: 'en' | 'ja', queries: string[]) {
  await model.encodeSentences([queries[0] as string], { lang }); // opens the encoder (and the dictionary)
  const times: number[] = [];
  for (let i = 0; i < QUERIES; i++) {
    const q = queries[i % queries.length] as string;
    const t = performance.now();
    await model.encodeSentences([q], { lang });
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return {
    p50: quantile(times, 0.5),
    p95: quantile(times, 0.95),
    mean: times.reduce((a, b) => a + b) / times.length,
  };
}

const loadBefore = loadavg()[0] as number;
const rssBefore = process.memoryUsage().rss;
const loads: number[] = [];
let tokenizer: JapaneseTokenizer | undefined;
let rssFirst = rssBefore;
for (let i = 0; i < LOADS; i++) {
  const loaded = await JapaneseTokenizer.load();
  loads.push(loaded.loadMs);
  tokenizer = loaded.tokenizer;
  if (i === 0) rssFirst = process.memoryUsage().rss;
}
if (!tokenizer) throw new Error('BENCH_LOADS must be at least 1');

const captions = await readJapaneseCaptions();
let tokens = 0;
const t0 = performance.now();
for (const c of captions) tokens += tokenizer.tokenize(c.text).length;
const tokenizeMs = performance.now() - t0;

const model = await JointModel.open(join(jointModelsDir, 'fne'), { providers: ['cpu'] });
const ja = await latency(model, 'ja', JA_QUERIES);
const en = await latency(model, 'en', EN_QUERIES);
const long = '浜辺を走る犬。'.repeat(1500).slice(0, 10_000);
const tLong = performance.now();
await model.encodeSentences([long], { lang: 'ja' });
const longMs = performance.now() - tLong;
await model.close();

const kuromojiDir = dirname(kuromojiDictDir());
const f = (x: number, d = 1) => x.toFixed(d);
log('## Japanese query path (`npm run bench:text`)');
log('');
log(
  `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, Node ${process.version}, onnxruntime-node CPU, one query at a time ` +
    `(${QUERIES} queries cycling over ${JA_QUERIES.length} typed sentences per language, after one warm-up query).`,
);
log(
  `Load average ${f(loadBefore, 1)} at the start and ${f(loadavg()[0] as number, 1)} at the end: other jobs share the cores, so the p95 and the load times are those of a busy machine.`,
);
log('');
log('| what | figure |');
log('| --- | --- |');
log(
  `| kuromoji 0.1.2 dictionary (IPADIC) load, first Japanese query only | ${loads.map((x) => f(x, 0)).join(' / ')} ms (${LOADS} loads) |`,
);
log(
  `| memory the dictionary adds (RSS growth over the first load; a process keeps one) | ${f((rssFirst - rssBefore) / 2 ** 20, 0)} MB |`,
);
log(
  `| kuromoji on disk: package / its dict/ (gzip) | ${f(du(kuromojiDir), 1)} MB / ${f(du(kuromojiDictDir()), 1)} MB |`,
);
log(
  `| tokenizer on the ${captions.length} Flickr8k Japanese captions | ${f(tokenizeMs / 1000, 2)} s: ${f((1000 * captions.length) / tokenizeMs, 0)} captions/s, ${f((1000 * tokens) / tokenizeMs, 0)} tokens/s (${f(tokens / captions.length, 1)} tokens per caption) |`,
);
log(
  `| Japanese query (tokenizer + GRU), p50 / p95 / mean | ${f(ja.p50, 2)} / ${f(ja.p95, 2)} / ${f(ja.mean, 2)} ms |`,
);
log(
  `| English query (tokenizer + GRU), p50 / p95 / mean | ${f(en.p50, 2)} / ${f(en.p95, 2)} / ${f(en.mean, 2)} ms |`,
);
log(`| a 10,000-character Japanese query (read up to 256 words) | ${f(longMs, 0)} ms |`);
log('');
log(
  "The dictionary is loaded on the first Japanese query (when JointModel opens the Japanese encoder), never at startup: an English-only session does not pay its time or memory. Lindera's wasm build (npm `lindera-wasm-nodejs-ipadic` 2.0.0) was not measured: it is not among the project's pinned dependencies, and this work adds none.",
);

if (process.argv.includes('--write')) {
  const file = await writeBenchSection('text', lines.join('\n'));
  console.log(`bench:text: wrote the section into ${file}`);
}
