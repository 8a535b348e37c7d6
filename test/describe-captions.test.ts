/**
 * Auto-captions and tags from the caption bank, with the shipped FNE model.
 *
 * The shipped bank must be exactly the deduplicated Flickr8k train+val English captions (no test caption,
 * nothing Japanese). Tags are measured on Flickr8k TEST images (their captions are not in the bank): the share
 * of images with a top-5 tag that their own human captions use, and on the reference photos for sensible
 * output. A user's own bank replaces the shipped one, and its vectors are cached under the given folder.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCaptions, readSplit } from '../src-main/engine/datasets/flickr8k.ts';
import {
  CaptionBank,
  CaptionBankError,
  captionKey,
  cleanCaption,
  contentLemmas,
  DEFAULT_CAPTION_BANK,
  isStopWord,
  lemma,
  tagsFor,
} from '../src-main/engine/describe/index.ts';
import { loadPreparedSplit, type PreparedSplit } from '../src-main/engine/eval/index.ts';
import { FneExtractor } from '../src-main/engine/fne/index.ts';
import { JointModel, jointModelsDir } from '../src-main/engine/joint/index.ts';
import { cacheDir } from '../src-main/engine/paths.ts';
import { referenceDir, skipNote } from './helpers/shared.ts';

describe('words and lemmas', () => {
  it('plurals, -ing and -ed of common verbs, irregular forms', () => {
    const cases: Record<string, string> = {
      dogs: 'dog',
      running: 'run',
      children: 'child',
      puppies: 'puppy',
      benches: 'bench',
      riding: 'ride',
      sitting: 'sit',
      swimming: 'swim',
      skiing: 'ski',
      jumped: 'jump',
      carried: 'carry',
      dressed: 'dress',
      men: 'man',
      women: 'woman',
      runs: 'run',
      shoes: 'shoe',
    };
    for (const [word, expected] of Object.entries(cases)) expect(lemma(word), word).toBe(expected);
  });

  it('leaves nouns alone that only look like verb forms or plurals', () => {
    for (const word of [
      'building',
      'clothing',
      'wedding',
      'grass',
      'dress',
      'shorts',
      'jeans',
      'glasses',
      'bus',
    ])
      expect(lemma(word), word).toBe(word);
    // With the bank's words: a singular the bank never uses is not made up.
    expect(lemma('tights', new Set(['dog']))).toBe('tights');
    expect(lemma('tights', new Set(['tight']))).toBe('tight');
  });

  it("content words of a caption: stop words and filler out, each lemma once, clitic 's dropped", () => {
    expect(contentLemmas("Two dogs are running in front of the dog's house .")).toEqual([
      'dog',
      'run',
      'house',
    ]);
    expect(contentLemmas('A man is wearing a hat and looking at the camera')).toEqual([
      'man',
      'hat',
      'camera',
    ]);
    for (const w of ['the', 'is', 'two', 'front', '3', 'a']) expect(isStopWord(w), w).toBe(true);
  });

  it('cleans a caption for display and keys duplicates regardless of case and spacing', () => {
    expect(cleanCaption('a dog  runs on the beach .')).toBe('A dog runs on the beach.');
    expect(captionKey('A dog runs on the beach.')).toBe(captionKey('a dog runs on the beach'));
    expect(captionKey('A dog runs.')).not.toBe(captionKey('A dog swims.'));
  });
});

const sharedNote = skipNote({ shared: true });

describe.skipIf(sharedNote !== '')(`the shipped bank file${sharedNote}`, () => {
  it('is the deduplicated Flickr8k train+val English captions, without a test caption or Japanese', async () => {
    const bank = (await readFile(DEFAULT_CAPTION_BANK, 'utf8')).split('\n').filter(Boolean);
    const trainVal = new Set([...(await readSplit('train')), ...(await readSplit('val'))]);
    const test = new Set(await readSplit('test'));
    const { captions } = await readCaptions();
    const expected = new Set(captions.filter((c) => trainVal.has(c.image)).map((c) => captionKey(c.text)));
    const keys = bank.map(captionKey);
    expect(new Set(keys).size).toBe(bank.length); // no duplicate
    expect(new Set(keys)).toEqual(expected);
    // Test captions appear only where a train or val image has the same words.
    const onlyTest = captions
      .filter((c) => test.has(c.image))
      .map((c) => captionKey(c.text))
      .filter((k) => !expected.has(k));
    expect(onlyTest.length).toBeGreaterThan(4000);
    const inBank = new Set(keys);
    expect(onlyTest.filter((k) => inBank.has(k))).toEqual([]);
    expect(bank.filter((t) => /[\u3040-\u30ff\u4e00-\u9fff]/u.test(t))).toEqual([]);
  });
});

const modelNote = skipNote({ shared: true, cnn: true });
const preparedDir = join(cacheDir, 'data', 'flickr8k-v2');
const preparedNote = existsSync(join(preparedDir, 'meta.json'))
  ? ''
  : ' [skipped: .cache/data/flickr8k-v2 is absent; run npm run data:prepare -- --out .cache/data/flickr8k-v2]';

describe.skipIf(modelNote !== '')(`captions and tags with the shipped FNE model${modelNote}`, () => {
  let model: JointModel;
  let bank: CaptionBank;
  beforeAll(async () => {
    model = await JointModel.open(join(jointModelsDir, 'fne'));
    // First use encodes the ~35k captions (about a minute on a laptop); later runs read .cache/captions.
    bank = await CaptionBank.open(model);
  });
  afterAll(async () => {
    await model?.close();
  });

  describe.skipIf(preparedNote !== '')(`50 Flickr8k test images${preparedNote}`, () => {
    let split: PreparedSplit;
    let vectors: Float32Array;
    const N = 50;
    beforeAll(async () => {
      split = await loadPreparedSplit(preparedDir, 'test');
      vectors = await model.embedImages(split.images.slice(0, N));
    });

    it('a top-5 tag appears in the image’s own human captions for most images; dog photos get "dog"', () => {
      const d = model.dim;
      let hit = 0;
      let precision = 0;
      let dogImages = 0;
      let dogTagged = 0;
      for (let i = 0; i < N; i++) {
        const own = split.captions.filter((c) => c.image === i);
        const words = new Set(own.flatMap((c) => contentLemmas(c.text, bank.vocabulary)));
        const tags = tagsFor(bank, vectors.subarray(i * d, (i + 1) * d), { max: 5 });
        expect(tags.length).toBeGreaterThan(0);
        const found = tags.filter((t) => words.has(t.text)).length;
        if (found > 0) hit++;
        precision += found / tags.length;
        if (own.filter((c) => /\b(dog|dogs|puppy|puppies)\b/i.test(c.text)).length >= 3) {
          dogImages++;
          if (tags.some((t) => t.text === 'dog' || t.text === 'puppy')) dogTagged++;
        }
      }
      console.log(
        `tags on ${N} test images: ${((hit / N) * 100).toFixed(0)} % have a top-5 tag in their own captions; top-5 precision ${((precision / N) * 100).toFixed(1)} %; ${dogTagged}/${dogImages} dog photos tagged "dog"`,
      );
      expect(hit / N).toBeGreaterThanOrEqual(0.85);
      expect(precision / N).toBeGreaterThanOrEqual(0.35);
      expect(dogImages).toBeGreaterThan(5);
      expect(dogTagged / dogImages).toBeGreaterThanOrEqual(0.8);
    });

    it('five captions, best first, scores the cosine the search uses; the best shares words with the human ones', () => {
      const d = model.dim;
      let related = 0;
      let ms = 0;
      for (let i = 0; i < N; i++) {
        const v = vectors.subarray(i * d, (i + 1) * d);
        const started = performance.now();
        const captions = bank.captionsFor(v, 5);
        ms += performance.now() - started;
        expect(captions).toHaveLength(5);
        for (let k = 1; k < 5; k++)
          expect(captions[k]?.score).toBeLessThanOrEqual(captions[k - 1]?.score as number);
        const own = new Set(
          split.captions.filter((c) => c.image === i).flatMap((c) => contentLemmas(c.text, bank.vocabulary)),
        );
        if (contentLemmas(captions[0]?.text as string, bank.vocabulary).some((w) => own.has(w))) related++;
      }
      console.log(`captionsFor: ${(ms / N).toFixed(1)} ms per image over ${bank.size} captions`);
      expect(related / N).toBeGreaterThanOrEqual(0.8);
    });
  });

  it('the reference photos get sensible tags: structure, lemmas, and what a person would say', async () => {
    const photos = join(referenceDir as string, 'photos');
    const files = (await readdir(photos)).filter((f) => !f.endsWith('.txt')).map((f) => join(photos, f));
    const extractor = await FneExtractor.open({ threads: 1 });
    const tags: Record<string, string[]> = {};
    try {
      for await (const r of extractor.extract(files)) {
        if (!r.ok) throw r.error;
        const vec = await model.embedImages([r.features]);
        const t = tagsFor(bank, vec);
        const name = r.features.file.split('/').at(-1) as string;
        tags[name] = t.map((x) => x.text);
        expect(t.length, name).toBeGreaterThan(2);
        for (const [k, x] of t.entries()) {
          expect(x.confidence).toBeGreaterThan(0);
          expect(x.confidence).toBeLessThanOrEqual(1);
          if (k > 0) expect(x.confidence).toBeLessThanOrEqual(t[k - 1]?.confidence as number);
          expect(isStopWord(x.text), x.text).toBe(false);
          expect(t.some((y) => y.text === `${x.text}s`)).toBe(false);
        }
      }
    } finally {
      await extractor.close();
    }
    console.log(
      Object.entries(tags)
        .map(([n, t]) => `${n}: ${t.slice(0, 5).join(', ')}`)
        .join('\n'),
    );
    expect(Object.keys(tags)).toHaveLength(10);
    expect(tags['coral_sunflower.png']?.slice(0, 5)).toEqual(expect.arrayContaining(['yellow', 'flower']));
    expect(tags['coral_grace_hopper.png']?.slice(0, 3)).toContain('man');
    expect(tags['rocket.jpg']?.slice(0, 5)).toContain('sky');
  });

  it("a user's own bank replaces the shipped one; its vectors are cached and read back", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sagasu-bank-'));
    try {
      const file = join(dir, 'mine.txt');
      await writeFile(
        file,
        [
          'A black dog runs along the beach.',
          'a black dog runs along the beach',
          '',
          '...',
          'Two children play in the snow.',
          'A bowl of soup on a wooden table.',
          'A man rides a bicycle down a city street.',
        ].join('\n'),
      );
      const mine = await CaptionBank.open(model, { file, cacheDir: dir });
      expect(mine.texts).toEqual([
        'A black dog runs along the beach.',
        'Two children play in the snow.',
        'A bowl of soup on a wooden table.',
        'A man rides a bicycle down a city street.',
      ]);
      const cached = (await readdir(join(dir, 'captions'))).filter((f) => f.endsWith('.f32'));
      expect(cached).toHaveLength(1);
      // Each caption's own sentence vector finds that caption first.
      const own = await model.encodeSentences(['a dog running on the sand', 'kids playing in snow']);
      expect(mine.captionsFor(own.subarray(0, model.dim), 1)[0]?.text).toBe(
        'A black dog runs along the beach.',
      );
      expect(mine.captionsFor(own.subarray(model.dim), 1)[0]?.text).toBe('Two children play in the snow.');
      const again = await CaptionBank.open(model, { file, cacheDir: dir });
      expect(again.vectors).toEqual(mine.vectors);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a missing bank and one without a usable caption, naming the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sagasu-bank-'));
    try {
      await expect(CaptionBank.open(model, { file: join(dir, 'none.txt') })).rejects.toThrow(
        CaptionBankError,
      );
      const empty = join(dir, 'empty.txt');
      await writeFile(empty, '\n...\n!!!\n');
      await expect(CaptionBank.open(model, { file: empty, cacheDir: dir })).rejects.toThrow(/empty\.txt/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
