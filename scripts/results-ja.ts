/**
 * tsx scripts/results-ja.ts [--prepared DIR] — the Japanese figures of docs/RESULTS.md that `sagasu eval`
 * does not print: on the Flickr8k 1k test split, with the shipped FNE model's image side,
 *
 * - both languages' R@K through engine/eval (the same protocol as `sagasu eval`, as a cross-check);
 * - the cross-lingual table: cosine between the English and the Japanese encoding of the same caption, vs
 *   the same image's other captions and vs random pairs (mean, standard deviation, 5th/50th/95th percentile);
 * - what a few Japanese queries retrieve (top 10 of the 1,000 test photos), judged by the photos' English
 *   captions (the Japanese captions are never printed: their terms do not allow shipping them).
 */
import { join } from 'node:path';
import { readJapaneseCaptions } from '../src-main/engine/datasets/prepare-ja.ts';
import { evaluateRetrieval, loadPreparedSplit } from '../src-main/engine/eval/index.ts';
import { JointModel, jointModelsDir } from '../src-main/engine/joint/index.ts';
import { cacheDir } from '../src-main/engine/paths.ts';

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
};
const preparedDir = arg('--prepared') ?? join(cacheDir, 'data', 'flickr8k-v2');
const split = await loadPreparedSplit(preparedDir, 'test');
const all = await readJapaneseCaptions();
const ja = Array.from(split.captionIndex, (c) => all[c]?.text as string);
const en = split.captions.map((c) => c.text);

const model = await JointModel.open(join(jointModelsDir, 'fne'), {
  layers: split.layers,
  providers: ['cpu'],
});
const dim = model.dim;
const images = await model.embedImages(split.images);
const enVectors = await model.encodeSentences(en, { lang: 'en' });
const jaVectors = await model.encodeSentences(ja, { lang: 'ja' });
const captionImage = split.captions.map((c) => c.image);

const f1 = (x: number) => x.toFixed(1);
console.log('| encoder | i2t R@1 | R@5 | R@10 | medr | t2i R@1 | R@5 | R@10 | medr | rsum |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const [name, captions] of [
  ['English', enVectors],
  ['Japanese', jaVectors],
] as const) {
  const r = await evaluateRetrieval({ images, captions, captionImage, dim });
  console.log(
    `| ${name} | ${f1(r.i2t.r1)} | ${f1(r.i2t.r5)} | ${f1(r.i2t.r10)} | ${r.i2t.medr} | ${f1(r.t2i.r1)} | ${f1(r.t2i.r5)} | ${f1(r.t2i.r10)} | ${r.t2i.medr} | ${f1(r.rsum)} |`,
  );
}

// -- cross-lingual ------------------------------------------------------------------------------------------
const cos = (a: Float32Array, i: number, b: Float32Array, j: number) => {
  let s = 0;
  for (let d = 0; d < dim; d++) s += (a[i * dim + d] as number) * (b[j * dim + d] as number);
  return s;
};
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] as number;
  return `${mean.toFixed(3)} | ${sd.toFixed(3)} | ${q(0.05).toFixed(3)} | ${q(0.5).toFixed(3)} | ${q(0.95).toFixed(3)} | ${xs.length}`;
};
// A fixed pseudo-random pairing (no caption with one of its own image's captions).
let seed = 12345;
const next = () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed;
};
const n = en.length;
const same: number[] = [];
const sameImage: number[] = [];
const sameImageEn: number[] = [];
const random: number[] = [];
const randomEn: number[] = [];
const byImage = new Map<number, number[]>();
for (const [k, img] of captionImage.entries()) byImage.set(img, [...(byImage.get(img) ?? []), k]);
for (let k = 0; k < n; k++) {
  same.push(cos(enVectors, k, jaVectors, k));
  for (const j of byImage.get(captionImage[k] as number) ?? [])
    if (j !== k) {
      sameImage.push(cos(enVectors, k, jaVectors, j));
      sameImageEn.push(cos(enVectors, k, enVectors, j));
    }
  let j = next() % n;
  while (captionImage[j] === captionImage[k]) j = next() % n;
  random.push(cos(enVectors, k, jaVectors, j));
  randomEn.push(cos(enVectors, k, enVectors, j));
}
console.log('');
console.log('| pair | mean cosine | sd | p5 | median | p95 | pairs |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
console.log(`| English caption vs its own Japanese translation | ${stats(same)} |`);
console.log(`| English caption vs the Japanese of another caption of the same photo | ${stats(sameImage)} |`);
console.log(`| English caption vs another English caption of the same photo | ${stats(sameImageEn)} |`);
console.log(`| English caption vs a random Japanese caption (another photo) | ${stats(random)} |`);
console.log(`| English caption vs a random English caption (another photo) | ${stats(randomEn)} |`);

// -- what Japanese queries retrieve ---------------------------------------------------------------------------
const firstCaption = new Map<number, string>();
for (const c of split.captions) if (!firstCaption.has(c.image)) firstCaption.set(c.image, c.text);
const captionsOf = (img: number) => (byImage.get(img) ?? []).map((k) => en[k] as string).join(' ');
const queries: Array<[string, string, RegExp[]]> = [
  ['浜辺を走る犬', 'a dog running on the beach', [/\bdogs?\b/i, /\b(beach|sand|ocean|shore|surf|waves?)\b/i]],
  ['雪の中で遊ぶ二匹の犬', 'two dogs playing in the snow', [/\bdogs?\b/i, /\bsnow/i]],
  ['自転車に乗る男性', 'a man riding a bicycle', [/\b(bike|bicycle|cyclist|biker|bmx)/i]],
  [
    '水に飛び込む黒い犬',
    'a black dog jumping into the water',
    [/\bdogs?\b/i, /\b(water|pool|lake|river)\b/i],
  ],
];
console.log('');
console.log(
  '| query (English gloss) | top 10 matching: Japanese query | English gloss as the query | top-1 photo for the Japanese query: its first English caption |',
);
console.log('| --- | --- | --- | --- |');
const details: string[] = [];
for (const [query, gloss, words] of queries) {
  const top10 = async (text: string) => {
    const q = await model.encodeSentences([text], { lang: 'auto' });
    return Array.from({ length: split.images.length }, (_, i) => [cos(q, 0, images, i), i] as const)
      .sort((a, b) => b[0] - a[0])
      .slice(0, 10);
  };
  const hits = (top: ReadonlyArray<readonly [number, number]>) =>
    top.filter(([, i]) => words.every((w) => w.test(captionsOf(i)))).length;
  const top = await top10(query);
  const english = await top10(gloss);
  console.log(
    `| 「${query}」 (${gloss}) | ${hits(top)} / 10 | ${hits(english)} / 10 | ${firstCaption.get(top[0]?.[1] as number)} |`,
  );
  details.push(`${query}:`);
  for (const [s, i] of top)
    details.push(`  ${s.toFixed(3)}  image ${split.imageIndex[i]}  ${firstCaption.get(i)}`);
}
console.log('');
console.log(details.join('\n'));
await model.close();
