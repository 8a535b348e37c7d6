/**
 * Concept tags on real demo photos: the CNN's own class probabilities (the `probs` output of the same pass),
 * the class names and WordNet hypernyms as tags, written to XMP as dc:subject and lr:hierarchicalSubject and
 * read back by exiftool itself.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleLibrary } from '../scripts/demo-library.ts';
import {
  CLASS_COUNT,
  ConceptLexicon,
  conceptScore,
  conceptTags,
  conceptTerms,
} from '../src-main/engine/concepts/index.ts';
import { readXmpSidecar, writeXmpSidecar } from '../src-main/engine/export/index.ts';
import { FneExtractor } from '../src-main/engine/fne/index.ts';
import { cnnBuilt, skipNote } from './helpers/shared.ts';

const run = promisify(execFile);
const hasExiftool = spawnSync('exiftool', ['-ver']).status === 0;
const photos = {
  koala: 'gcompris-051.jpg',
  lighthouse: 'tuxpaint-004.jpg',
  polarBear: 'gcompris-056.jpg',
  coffee: 'skimage-004.jpg',
} as const;
const hasDemo = Object.values(photos).every((f) => existsSync(join(sampleLibrary, f)));
const note =
  skipNote({ cnn: true }) ||
  (hasDemo ? '' : ' [skipped: the demo library is not built (npm run demo:build)]');

/** The classifier's probabilities without the background output (class i = output i + 1). */
const probsOf: Record<string, Float32Array> = {};
let lexicon: ConceptLexicon;

describe.skipIf(!cnnBuilt || !hasDemo)(`concept tags and scores on demo photos${note}`, () => {
  beforeAll(async () => {
    lexicon = await ConceptLexicon.load();
    const extractor = await FneExtractor.open({ threads: 1 });
    try {
      const names = Object.keys(photos) as Array<keyof typeof photos>;
      let k = 0;
      for await (const r of extractor.extract(names.map((n) => join(sampleLibrary, photos[n])))) {
        if (!r.ok) throw r.error;
        probsOf[names[k++] as string] = r.features.probs.slice(1);
      }
    } finally {
      await extractor.close();
    }
  }, 120_000);

  it('the koala is tagged koala, with marsupial, mammal and animal above it', () => {
    const probs = probsOf.koala as Float32Array;
    expect(probs).toHaveLength(CLASS_COUNT);
    const tags = conceptTags(lexicon, probs);
    const koala = tags.find((t) => t.text === 'koala');
    expect(koala?.confidence).toBeGreaterThan(0.5);
    expect(koala?.hierarchy).toMatch(/^animal\|.*mammal\|marsupial\|koala$/);
    for (const t of ['marsupial', 'mammal', 'animal']) {
      const tag = tags.find((x) => x.text === t);
      // A hypernym holds at least the mass of the class under it.
      expect(tag?.confidence, t).toBeGreaterThanOrEqual(koala?.confidence as number);
      expect(koala?.hierarchy.startsWith(tag?.hierarchy as string), t).toBe(true);
    }
    expect(tags.every((t) => t.confidence >= 0.1 && t.confidence <= 1)).toBe(true);
  });

  it('the lighthouse photo is tagged lighthouse, the polar bear polar bear', () => {
    expect(conceptTags(lexicon, probsOf.lighthouse as Float32Array).map((t) => t.text)).toContain(
      'lighthouse',
    );
    expect(conceptTags(lexicon, probsOf.polarBear as Float32Array).map((t) => t.text)).toContain(
      'polar bear',
    );
  });

  it('each query concept scores its own photo above the other three, in English and Japanese', async () => {
    for (const [query, lang, own] of [
      ['a koala in a tree', 'en', 'koala'],
      ['a lighthouse by the sea', 'en', 'lighthouse'],
      ['two polar bears', 'en', 'polarBear'],
      ['a cup of coffee', 'en', 'coffee'],
      ['木の上のコアラ', 'ja', 'koala'],
      ['灯台', 'ja', 'lighthouse'],
      ['白熊', 'ja', 'polarBear'],
    ] as const) {
      const q = await lexicon.query(query, lang);
      const scores = Object.fromEntries(
        Object.entries(probsOf).map(([name, p]) => [name, conceptScore(q, p)]),
      );
      for (const [name, s] of Object.entries(scores))
        if (name !== own) expect(scores[own], `${query}: ${own} vs ${name}`).toBeGreaterThan(s as number);
    }
  });

  it('explains the score term by term: the koala photo shows the koala, not the lighthouse', async () => {
    const q = await lexicon.query('a koala and a lighthouse', 'en');
    const probs = probsOf.koala as Float32Array;
    const terms = conceptTerms(q, probs);
    expect(terms.map((t) => [t.term, t.lemmas])).toEqual([
      ['koala', ['koala']],
      ['lighthouse', ['lighthouse']],
    ]);
    const [koala, lighthouse] = terms as [(typeof terms)[0], (typeof terms)[0]];
    expect(koala.mass).toBeGreaterThan(0.5);
    expect(lighthouse.mass).toBeLessThan(0.01);
    expect(koala.score).toBeGreaterThan(lighthouse.score);
    const mean = terms.reduce((a, t) => a + t.weight * t.score, 0) / terms.reduce((a, t) => a + t.weight, 0);
    expect(conceptScore(q, probs)).toBeCloseTo(mean, 10);
  });

  describe.skipIf(!hasExiftool)(
    `XMP hierarchical keywords${hasExiftool ? '' : ' [skipped: exiftool is not installed (apt-get install libimage-exiftool-perl)]'}`,
    () => {
      let dir: string;
      beforeAll(async () => {
        dir = await mkdtemp(join(tmpdir(), 'sagasu-concept-xmp-'));
      });
      afterAll(async () => {
        await rm(dir, { recursive: true, force: true });
      });

      it('writes dc:subject and lr:hierarchicalSubject, which exiftool reads back; a rejected tag goes', async () => {
        const photo = join(dir, 'koala.jpg');
        await copyFile(join(sampleLibrary, photos.koala), photo);
        const tags = conceptTags(lexicon, probsOf.koala as Float32Array);
        const hierarchy = Object.fromEntries(tags.map((t) => [t.text, t.hierarchy]));
        const sidecar = await writeXmpSidecar(photo, {
          tags: tags.map((t) => t.text),
          caption: null,
          hierarchy,
        });
        const { stdout } = await run('exiftool', [
          '-j',
          '-XMP-lr:HierarchicalSubject',
          '-XMP-dc:Subject',
          sidecar,
        ]);
        const row = (JSON.parse(stdout) as Array<Record<string, unknown>>)[0] as Record<string, unknown>;
        expect(row.Subject).toEqual(expect.arrayContaining(['koala', 'marsupial', 'mammal', 'animal']));
        const paths = row.HierarchicalSubject as string[];
        expect(paths).toContain(hierarchy.koala);
        expect(paths.find((p) => p.endsWith('|marsupial|koala'))).toBeDefined();
        expect(new Set(paths)).toEqual(new Set(tags.map((t) => t.hierarchy)));

        // The editor rejects "koala" later: its path goes, the others stay, nothing is duplicated on rewrite.
        await writeXmpSidecar(photo, {
          tags: tags.filter((t) => t.text !== 'koala').map((t) => t.text),
          removeTags: ['koala'],
          caption: null,
          hierarchy,
        });
        const back = await readXmpSidecar(sidecar);
        expect(back.tags).not.toContain('koala');
        expect(back.hierarchicalTags).not.toContain(hierarchy.koala);
        expect(back.hierarchicalTags).toHaveLength(tags.length - 1);
      });
    },
  );
});
