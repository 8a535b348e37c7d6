// npm run concepts:check [-- <prepared Flickr8k folder with probs.f32>]: how well the concept score alone
// ranks each caption's own photo (ties counted against it), on the demo library's `shows` captions and, when
// a prepared Flickr8k folder with class probabilities is given, on its validation split. A check of the
// lexicon, not of search: search fuses this score with the joint space.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConceptLexicon, conceptScore } from '../src-main/engine/concepts/index.ts';
import { FneExtractor } from '../src-main/engine/fne/index.ts';
import { sampleLibrary } from './demo-library.ts';

const lexicon = await ConceptLexicon.load();

async function report(name: string, captions: Array<{ text: string; own: number }>, probs: Float32Array[]) {
  let withConcepts = 0;
  const hits = [0, 0, 0];
  for (const { text, own } of captions) {
    const q = await lexicon.query(text, 'en');
    if (q.matches.length === 0) continue;
    withConcepts++;
    const s = probs.map((p) => conceptScore(q, p));
    const rank = s.filter((x, j) => j !== own && x >= (s[own] as number)).length;
    [1, 3, 10].forEach((k, i) => {
      if (rank < k) hits[i] = (hits[i] as number) + 1;
    });
  }
  const pct = (n: number) => `${((100 * n) / captions.length).toFixed(1)} %`;
  console.log(
    `${name}: ${captions.length} captions over ${probs.length} photos, ${withConcepts} with a concept; ` +
      `own photo first ${pct(hits[0] as number)}, top 3 ${pct(hits[1] as number)}, top 10 ${pct(hits[2] as number)}`,
  );
}

const attribution = join(sampleLibrary, 'attribution.json');
if (existsSync(attribution)) {
  const photos = JSON.parse(readFileSync(attribution, 'utf8')) as Array<{ file: string; shows: string }>;
  const extractor = await FneExtractor.open({ stats: 'none' });
  const probs: Float32Array[] = [];
  for await (const r of extractor.extract(photos.map((p) => join(sampleLibrary, p.file)))) {
    if (!r.ok) throw r.error;
    probs.push(r.features.probs.slice(1));
  }
  await extractor.close();
  await report(
    'demo library',
    photos.map((p, own) => ({ text: p.shows, own })),
    probs,
  );
} else console.log('demo library: not built (npm run demo:build)');

const prepared = process.argv[2];
if (prepared) {
  const rows = readFileSync(join(prepared, 'images.tsv'), 'utf8').trim().split('\n').slice(1);
  const bytes = readFileSync(join(prepared, 'probs.f32'));
  const all = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  const val = rows.map((r) => r.split('\t')).filter((r) => r[2] === 'val');
  const at = new Map(val.map((r, k) => [Number(r[0]), k]));
  const probs = val.map((r) => all.slice(Number(r[0]) * 1000, (Number(r[0]) + 1) * 1000));
  const captions = readFileSync(join(prepared, 'captions.tsv'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split('\t'))
    .filter((c) => at.has(Number(c[1])))
    .map((c) => ({ text: c[3] as string, own: at.get(Number(c[1])) as number }));
  await report('Flickr8k val', captions, probs);
}
