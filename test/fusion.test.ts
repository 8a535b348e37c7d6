import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleLibraryDir } from '../src-main/doors/index.ts';
import { Engine } from '../src-main/engine/api/engine.ts';
import { imagenetClassProbs } from '../src-main/engine/cnn/index.ts';
import { ConceptLexicon, conceptScore } from '../src-main/engine/concepts/index.ts';
import { FneExtractor } from '../src-main/engine/fne/index.ts';
import {
  ClassTable,
  classTableOf,
  conceptScores,
  conceptZ,
  decodeTopClasses,
  encodeTopClasses,
  TOP_CLASSES,
  topClasses,
  unknownShare,
  zNormalize,
} from '../src-main/engine/fusion/index.ts';
import { CATALOG_FILE, Library } from '../src-main/engine/library/index.ts';
import { modelsDir } from '../src-main/engine/paths.ts';
import { skipNote } from './helpers/shared.ts';

/**
 * The fused ranking on real demo photos: what the catalog stores of the classifier (top 20, 8-bit), the
 * concept score computed from it (equal to the concepts room's conceptScore on those probabilities), the
 * library keeping and backfilling it, and search ranking by it.
 */
const demo = sampleLibraryDir();
const note =
  skipNote({ cnn: true }) ||
  (existsSync(join(demo, 'attribution.json'))
    ? ''
    : ' [skipped: assets/sample-library is not built; npm run demo:build needs apt-get and dpkg]');

/** Demo photos by what they show (file names are neutral). */
const PICKS: Record<string, string> = {
  lighthouse: 'tuxpaint-004.jpg',
  koala: 'gcompris-051.jpg',
  polarBear: 'gcompris-056.jpg',
  coffee: 'skimage-004.jpg',
  citrus: 'palapeli-003.jpg',
  spaniels: 'lomiri-008.jpg',
  shepherd: 'gcompris-037.jpg',
  jellyfish: 'tuxpaint-003.jpg',
};
const files = Object.values(PICKS);

describe('fusion arithmetic', () => {
  it('z-normalizes per query, caps outliers, and gives nothing when every photo scores the same', () => {
    const z = zNormalize(Float32Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, -6.9]), 2);
    expect(Math.min(...z)).toBe(-2);
    expect(z[0]).toBeCloseTo(1 / 3, 5);
    expect([...zNormalize(Float32Array.from([-6.9, -6.9, -6.9]), 3)]).toEqual([0, 0, 0]);
  });

  it('scores a small library as if it held 150 photos, so a unique match keeps its lift', () => {
    const w = { concept: 0.02, unknown: 0, keyword: 0, zCap: 32, floor: 0.01 };
    const library = (n: number) => Float32Array.from({ length: n }, (_, i) => (i === 0 ? 0 : Math.log(0.01)));
    // Unpadded, the koala photo alone among 8 reaches z = √7; among 150, √149.
    expect(zNormalize(library(8), 32)[0]).toBeCloseTo(Math.sqrt(7), 4);
    const padded = conceptZ(library(8), w);
    expect(padded[0]).toBeCloseTo(Math.sqrt(149), 3);
    expect(padded[0]).toBeCloseTo(conceptZ(library(150), w)[0] as number, 5);
    // At 150 photos and more it is the plain z.
    expect([...conceptZ(library(400), w)]).toEqual([...zNormalize(library(400), 32)]);
  });

  it('counts the share of concepts the sentence encoder does not know, by weight', () => {
    const terms = {
      matches: [
        { term: 'lighthouse', classes: [437], weight: 1 },
        { term: 'sea', classes: [978], weight: 0.5 },
        { term: 'sea', classes: [], weight: 0.5 },
      ],
    };
    expect(unknownShare(terms, new Set(['lighthouse']))).toBeCloseTo(1 / 1.5, 6);
    expect(unknownShare(terms, new Set())).toBe(0);
    expect(unknownShare({ matches: [] }, new Set(['xqzzy']))).toBe(0);
    // A phrase with one word the encoder cannot read is a concept it cannot represent.
    const panda = { matches: [{ term: 'giant panda', classes: [388], weight: 1 }] };
    expect(unknownShare(panda, new Set(['panda']))).toBe(1);
    expect(unknownShare(panda, new Set(['bamboo']))).toBe(0);
  });

  it('refuses probabilities that are not 1000 ImageNet classes, naming the argument', () => {
    expect(() => topClasses(new Float32Array(10))).toThrow(
      /probs: expected 1000 class probabilities, got 10/,
    );
    expect(() => imagenetClassProbs(new Float32Array(999))).toThrow(/probs: the classifier has 999 outputs/);
    expect(() => decodeTopClasses(new Uint8Array(4))).toThrow(/classes: 4 bytes/);
  });

  it('keeps a photo table consistent through replace and delete', () => {
    const table = new ClassTable(2, 1);
    table.set(7, { classes: Uint16Array.from([1, 2]), probs: Float32Array.from([0.5, 0.25]) });
    table.set(9, { classes: Uint16Array.from([3]), probs: Float32Array.from([0.9]) });
    const byClass = (c: number) => {
      const { start, rows, probs } = table.view().byClass();
      const from = start[c] as number;
      const to = start[c + 1] as number;
      return [...rows.subarray(from, to)].map((row, i) => [row, probs[from + i]]);
    };
    expect(byClass(2)).toEqual([[0, 0.25]]);
    const dogOrCat = { matches: [{ term: 'x', classes: [3, 4], weight: 1 }] };
    table.set(7, { classes: Uint16Array.from([4]), probs: Float32Array.from([0.5]) });
    // The grouping by class follows every change: the replaced row's old classes are gone.
    expect(byClass(2)).toEqual([]);
    expect(byClass(4)).toEqual([[0, 0.5]]);
    expect([...(conceptScores(dogOrCat, table.view()) as Float32Array)]).toEqual([
      Math.fround(Math.log(0.5)),
      Math.fround(Math.log(Math.fround(0.9))),
    ]);
    table.delete(7);
    const rows = table.view();
    expect(rows.size).toBe(1);
    expect(rows.ids[0]).toBe(9);
    expect(table.row(9)).toBe(0);
    expect(table.row(7)).toBeUndefined();
    expect(rows.classes[0]).toBe(3);
    expect(byClass(3)).toEqual([[0, Math.fround(0.9)]]);
    expect(byClass(4)).toEqual([]);
  });
});

describe(`fusion on real demo photos${note}`, () => {
  let probs: Float32Array[];
  let lexicon: ConceptLexicon;

  beforeAll(async () => {
    if (note) return;
    lexicon = await ConceptLexicon.load();
    const extractor = await FneExtractor.open();
    try {
      probs = [];
      for await (const r of extractor.extract(files.map((f) => join(demo, f)))) {
        if (!r.ok) throw r.error;
        probs.push(imagenetClassProbs(r.features.probs).slice());
      }
    } finally {
      await extractor.close();
    }
  });

  it.skipIf(note !== '')('stores the top 20 classes in 60 bytes, probabilities within 3.2 %', () => {
    for (const p of probs) {
      const top = topClasses(p);
      const bytes = encodeTopClasses(top);
      expect(bytes.length).toBe(3 * TOP_CLASSES);
      const back = decodeTopClasses(bytes);
      expect([...back.classes]).toEqual([...top.classes]);
      for (let k = 0; k < TOP_CLASSES; k++) {
        const exact = top.probs[k] as number;
        if (exact < 1e-6) continue;
        expect(Math.abs((back.probs[k] as number) / exact - 1)).toBeLessThan(0.032);
      }
      // Most probable first: the classifier's own answer is the first entry.
      expect(top.classes[0]).toBe(p.indexOf(Math.max(...p)));
    }
  });

  it.skipIf(note !== '')(
    "scores concepts from the stored classes exactly as the concepts room's conceptScore on them",
    async () => {
      const table = classTableOf(probs);
      const rows = table.view();
      for (const sentence of ['a lighthouse by the sea', 'two dogs', 'a polar bear', 'a cup of coffee']) {
        const query = await lexicon.query(sentence, 'en');
        const fast = conceptScores(query, rows) as Float32Array;
        expect(fast).not.toBeNull();
        for (let row = 0; row < rows.size; row++) {
          const dense = new Float32Array(1000);
          for (let e = 0; e < rows.k; e++)
            dense[rows.classes[row * rows.k + e] as number] = rows.probs[row * rows.k + e] as number;
          expect(fast[row]).toBeCloseTo(conceptScore(query, dense), 5);
        }
      }
      expect(conceptScores(await lexicon.query('xqzzy blorf', 'en'), rows)).toBeNull();
    },
  );

  it.skipIf(note !== '')('puts the photo a concept names on top of the concept term', async () => {
    const rows = classTableOf(probs).view();
    const expectTop = async (sentence: string, pick: string) => {
      const z = zNormalize(conceptScores(await lexicon.query(sentence, 'en'), rows) as Float32Array, 3);
      const best = z.indexOf(Math.max(...z));
      expect(files[best], sentence).toBe(PICKS[pick]);
    };
    await expectTop('a small lighthouse tower against a blue sky', 'lighthouse');
    await expectTop('a koala in a tree', 'koala');
    await expectTop('glowing jellyfish', 'jellyfish');
    await expectTop('slices of oranges and lemons', 'citrus');
  });
});

describe(`the library keeps class probabilities and search ranks by the fused score${note}`, () => {
  let dir: string;
  let photos: string;

  beforeAll(async () => {
    if (note) return;
    dir = await mkdtemp(join(tmpdir(), 'sagasu-fusion-'));
    photos = join(dir, 'photos');
    await mkdir(photos);
    for (const f of files) await copyFile(join(demo, f), join(photos, f));
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.skipIf(note !== '')(
    'writes the classes with the vectors, and a library indexed without them gains them on the next run',
    async () => {
      const libraryDir = join(dir, 'library');
      let library = await Library.open({ dir: libraryDir });
      try {
        library.roots.add(photos);
        await library.indexer.run();
        expect(library.search.classes.size).toBe(files.length);
      } finally {
        await library.close();
      }
      // As if indexed by a Sagasu that kept no classes: the vectors stay, the classes go.
      const db = new Database(join(libraryDir, CATALOG_FILE));
      const before = db.prepare('SELECT image_id, q FROM embeddings ORDER BY image_id').all();
      const stored = db.prepare('SELECT count(*) AS n, sum(length(top)) AS bytes FROM classes').get() as {
        n: number;
        bytes: number;
      };
      expect(stored).toEqual({ n: files.length, bytes: files.length * 3 * TOP_CLASSES });
      db.prepare('DELETE FROM classes').run();
      db.close();

      library = await Library.open({ dir: libraryDir });
      try {
        expect(library.search.classes.size).toBe(0);
        const seen: number[] = [];
        const end = await library.indexer.run({ onProgress: (p) => seen.push(p.total) });
        expect(end.state).toBe('done');
        expect(end.total).toBe(files.length);
        expect(end.done).toBe(files.length);
        expect(library.search.classes.size).toBe(files.length);
      } finally {
        await library.close();
      }
      const check = new Database(join(libraryDir, CATALOG_FILE), { readonly: true });
      try {
        // The backfill ran the CNN for classes only: every vector is byte-for-byte the one stored before.
        expect(check.prepare('SELECT image_id, q FROM embeddings ORDER BY image_id').all()).toEqual(before);
        expect((check.prepare('SELECT count(*) AS n FROM classes').get() as { n: number }).n).toBe(
          files.length,
        );
      } finally {
        check.close();
      }
    },
  );

  it.skipIf(note !== '')(
    'finds by concept what the sentence encoder cannot read, and keeps working on a damaged lexicon',
    async () => {
      const libraryDir = join(dir, 'library');
      const engine = await Engine.open({ libraryDir });
      try {
        const ranked = async (query: string, cutoff?: null) => {
          const page = await engine.invoke('search', { query, k: 8, ...(cutoff === null ? { cutoff } : {}) });
          return page.hits.map((h) => h.path.split('/').at(-1) as string);
        };
        // "lighthouse" and "koala" are words the GRU never saw: the classifier's concepts carry these queries.
        expect((await ranked('a lighthouse by the sea', null))[0]).toBe(PICKS.lighthouse);
        expect((await ranked('a koala', null))[0]).toBe(PICKS.koala);
        // The cutoff only cuts: what passes is the head of the same ranking.
        for (const query of ['a dog looking out of a window', 'a cup of coffee', 'two dogs']) {
          const all = await ranked(query, null);
          const cut = await ranked(query);
          expect(cut.length).toBeLessThan(all.length);
          expect(cut).toEqual(all.slice(0, cut.length));
        }
        const nonsense = await engine.invoke('search', { query: 'xqzzy blorf', k: 10 });
        expect(nonsense.note).toMatch(/None of the words is known/);
      } finally {
        await engine.close();
      }
      const damaged = join(dir, 'lexicon.json');
      await writeFile(damaged, '{"format":');
      const fallback = await Engine.open({ libraryDir, conceptLexicon: damaged });
      try {
        const page = await fallback.invoke('search', { query: 'a dog on grass', k: 3 });
        expect(page.note).toContain(damaged);
        expect(page.note).toMatch(/^Concepts are off/);
        // Without concepts, the joint cosine ranks against its own calibrated cutoff, not the fused one.
        const calibration = JSON.parse(await readFile(join(modelsDir, 'search.json'), 'utf8'));
        expect(page.cutoff).toBe(calibration.models[0].cutoff);
        const all = await fallback.invoke('search', { query: 'a dog on grass', k: 3, cutoff: null });
        expect(all.hits).toHaveLength(3);
      } finally {
        await fallback.close();
      }
    },
  );
});
