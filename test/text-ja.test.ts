import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PREPARED_FORMAT } from '../src-main/engine/datasets/prepare.ts';
import {
  FIXTURE_SENTENCES,
  FIXTURE_SENTENCES_FILE,
  prepareFlickr8kJapanese,
  readJapaneseCaptions,
} from '../src-main/engine/datasets/prepare-ja.ts';
import { SagasuError } from '../src-main/engine/errors.ts';
import {
  detectLanguage,
  JA_TOKENIZER_VERSION,
  type JapaneseTokenizer,
  japaneseTokenizer,
  normalizeJapanese,
  tokenizeJapanese,
  Vocabulary,
} from '../src-main/engine/text/index.ts';
import { shared, skipNote } from './helpers/shared.ts';

let tokenizer: JapaneseTokenizer;
beforeAll(async () => {
  tokenizer = (await japaneseTokenizer()).tokenizer;
});

describe('detectLanguage', () => {
  it('sends kana or kanji to Japanese, Latin script to English', () => {
    expect(detectLanguage('雪の中で遊ぶ二匹の犬')).toBe('ja');
    expect(detectLanguage('two dogs playing in the snow')).toBe('en');
    expect(detectLanguage('ひらがな')).toBe('ja');
    expect(detectLanguage('カタカナ')).toBe('ja');
    expect(detectLanguage('ｶﾀｶﾅ')).toBe('ja'); // half-width katakana
    expect(detectLanguage('犬')).toBe('ja'); // a kanji alone
  });

  it('sends a mixed query to Japanese, and script-less text to English', () => {
    expect(detectLanguage('iPhoneで撮った犬')).toBe('ja');
    expect(detectLanguage('dog 犬')).toBe('ja');
    expect(detectLanguage('')).toBe('en');
    expect(detectLanguage('123 !?')).toBe('en');
    expect(detectLanguage('😀')).toBe('en');
  });
});

describe('normalizeJapanese', () => {
  it('folds full-width Latin and digits, half-width katakana and lower-cases Latin (NFKC)', () => {
    expect(normalizeJapanese('ＡＢＣ１２３')).toBe('abc123');
    expect(normalizeJapanese('ｶﾀｶﾅ')).toBe('カタカナ');
    expect(normalizeJapanese('ﾊﾞｽ')).toBe('バス'); // the voiced mark joins its kana
    expect(normalizeJapanese('\u3000犬')).toBe(' 犬');
    // Emoji become spaces (the analyzer would swallow the next character); astral kanji stay.
    expect(normalizeJapanese('犬😀が')).toBe('犬 が');
    expect(normalizeJapanese('𠮷野')).toBe('𠮷野');
  });

  it('unifies long-vowel marks after kana and collapses repeats, leaving dashes elsewhere alone', () => {
    for (const written of ['コーヒー', 'コ－ヒ－', 'コｰヒｰ', 'コ―ヒ―', 'コ〜ヒ〜', 'コーーヒーー', 'コ-ヒ-'])
      expect(normalizeJapanese(written)).toBe('コーヒー');
    expect(normalizeJapanese('1-2')).toBe('1-2');
  });
});

describe('JapaneseTokenizer (kuromoji, IPADIC)', () => {
  it(`is version ${JA_TOKENIZER_VERSION} and loads once per process`, async () => {
    const a = await japaneseTokenizer();
    const b = await japaneseTokenizer();
    expect(JA_TOKENIZER_VERSION).toBe('ja-1');
    expect(a).toBe(b);
    expect(a.loadMs).toBeGreaterThan(0);
  });

  it('splits a sentence into words and keeps the base form of inflected ones', () => {
    expect(tokenizer.tokenize('雪の中で遊ぶ二匹の犬')).toEqual([
      '雪',
      'の',
      '中',
      'で',
      '遊ぶ',
      '二',
      '匹',
      'の',
      '犬',
    ]);
    // 走っている -> 走る て いる; 追いかけた -> 追いかける た
    expect(tokenizer.tokenize('走っている犬が赤いボールを追いかけた。')).toEqual([
      '走る',
      'て',
      'いる',
      '犬',
      'が',
      '赤い',
      'ボール',
      'を',
      '追いかける',
      'た',
    ]);
    expect(tokenizer.tokenize('走る犬')[0]).toBe(tokenizer.tokenize('走った犬')[0]);
  });

  it('drops punctuation, symbols, emoji and spaces', () => {
    expect(tokenizer.tokenize('犬、猫。鳥！？「魚」（亀）')).toEqual(['犬', '猫', '鳥', '魚', '亀']);
    expect(tokenizer.tokenize('犬😀🐶が　走る')).toEqual(['犬', 'が', '走る']);
    expect(tokenizer.tokenize('')).toEqual([]);
    expect(tokenizer.tokenize('\u3000\u3000')).toEqual([]);
    expect(tokenizer.tokenize('。、！？…・')).toEqual([]);
    expect(tokenizer.tokenize('😀🐶🎉')).toEqual([]);
  });

  it('gives the same words for half-width, full-width and long-vowel variants', () => {
    expect(tokenizer.tokenize('ｺｰﾋｰを飲む')).toEqual(tokenizer.tokenize('コーヒーを飲む'));
    expect(tokenizer.tokenize('コ－ヒ－を飲む')).toEqual(tokenizer.tokenize('コーヒーを飲む'));
    expect(tokenizer.tokenize('ｉＰｈｏｎｅで撮った犬')).toEqual(['iphone', 'で', '撮る', 'た', '犬']);
  });

  it('keeps unknown words whole, by their surface form', () => {
    expect(tokenizer.tokenize('iPhoneで撮った犬')).toEqual(['iphone', 'で', '撮る', 'た', '犬']);
    expect(tokenizer.tokenize('ピカチュウ')).toEqual(['ピカチュウ']);
  });

  it('reads a 10,000-character text (in pieces) and a text of one repeated sentence like the sentence', () => {
    const long = tokenizer.tokenize('あ'.repeat(10_000));
    expect(long.length).toBeGreaterThan(0);
    const sentence = '犬が浜辺を走る。';
    const words = tokenizer.tokenize(sentence);
    const repeated = tokenizer.tokenize(sentence.repeat(100));
    expect(repeated.length).toBe(words.length * 100);
    expect(repeated.slice(-words.length)).toEqual(words);
  });

  it('tokenizeJapanese is the same tokenizer', async () => {
    expect(await tokenizeJapanese('浜辺を走る犬')).toEqual(tokenizer.tokenize('浜辺を走る犬'));
  });
});

// -----------------------------------------------------------------------------------------------------------
// Data preparation: a small English-file/Japanese-file pair with real Japanese text, then the real files.

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('readJapaneseCaptions / prepareFlickr8kJapanese', () => {
  let root: string;
  let data: string;
  let images: string;
  const english = [
    'a.jpg#0\tA dog runs on the beach .',
    'a.jpg#1\tA brown dog running .',
    'b.jpg#0\tTwo dogs play in the snow .',
    '2258277193_586949ec62.jpg.1#0\tbogus',
    'c.jpg#0\tA man rides a bike .',
  ];
  const japanese = [
    '[a.jpg#0]\t浜辺を走る犬。',
    '[a.jpg#1]\t走っている茶色の犬。',
    '[b.jpg#0]\t雪の中で遊ぶ二匹の犬。',
    '[2258277193_586949ec62.jpg.1#0]\t偽物',
    '[c.jpg#0]\t自転車に乗る男性。',
  ];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'sagasu-ja-'));
    data = join(root, 'flickr8k');
    images = join(root, 'prepared');
    await mkdir(data);
    await mkdir(images);
    await writeFile(join(data, 'Flickr8k.token.txt'), `${english.join('\n')}\n`);
    await writeFile(join(data, 'Flickr8k.token.ja.txt'), `${japanese.join('\n')}\n`);
    await writeFile(join(images, 'meta.json'), JSON.stringify({ format: PREPARED_FORMAT }));
    await writeFile(
      join(images, 'images.tsv'),
      'index\timage\tsplit\tsha256\n0\ta.jpg\ttrain\tx\n1\tb.jpg\tval\tx\n2\tc.jpg\ttest\tx\n',
    );
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('reads the Japanese captions in the English order, without the bogus id', async () => {
    const lines: string[] = [];
    const captions = await readJapaneseCaptions(data, (l) => lines.push(l));
    expect(captions.map((c) => `${c.image}#${c.n}`)).toEqual(['a.jpg#0', 'a.jpg#1', 'b.jpg#0', 'c.jpg#0']);
    expect(captions[2]?.text).toBe('雪の中で遊ぶ二匹の犬。');
    expect(lines.join('\n')).toMatch(/skipped 1 captions of 2258277193_586949ec62\.jpg\.1/);
  });

  it('refuses a Japanese file whose keys are not the English ones, naming the line', async () => {
    const swapped = [japanese[1], japanese[0], ...japanese.slice(2)];
    const bad = join(root, 'swapped');
    await mkdir(bad, { recursive: true });
    await writeFile(join(bad, 'Flickr8k.token.txt'), `${english.join('\n')}\n`);
    await writeFile(join(bad, 'Flickr8k.token.ja.txt'), `${swapped.join('\n')}\n`);
    const error = await readJapaneseCaptions(bad).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SagasuError);
    expect((error as SagasuError).subject).toBe(`${join(bad, 'Flickr8k.token.ja.txt')}:1`);
    expect((error as Error).message).toMatch(/a\.jpg#1 where the English file has a\.jpg#0/);

    await writeFile(join(bad, 'Flickr8k.token.ja.txt'), 'a.jpg#0\t犬\n');
    await expect(readJapaneseCaptions(bad)).rejects.toThrow(/is not a key/);
  });

  it('writes token ids of the app tokenizer, a train+val vocabulary and the image of each caption', async () => {
    const out = join(root, 'ja');
    const meta = await prepareFlickr8kJapanese({ images, out, dataDir: data, minCount: 1 });
    expect(meta.tokenizer).toBe(JA_TOKENIZER_VERSION);
    expect(meta.captions).toBe(4);
    const vocab = Vocabulary.parse(await readFile(join(out, 'vocab.txt'), 'utf8'), 'vocab.txt');
    // Train and val words are in; the test caption's own words are not.
    expect(vocab.has('浜辺')).toBe(true);
    expect(vocab.has('雪')).toBe(true);
    expect(vocab.has('自転車')).toBe(false);
    const i32 = async (name: string) => {
      const b = await readFile(join(out, name));
      return new Int32Array(b.buffer, b.byteOffset, b.length / 4);
    };
    const [tokens, offsets, captionImage] = await Promise.all([
      i32('tokens.i32'),
      i32('offsets.i32'),
      i32('caption_image.i32'),
    ]);
    expect([...captionImage]).toEqual([0, 0, 1, 2]);
    const texts = ['浜辺を走る犬。', '走っている茶色の犬。', '雪の中で遊ぶ二匹の犬。', '自転車に乗る男性。'];
    for (const [k, text] of texts.entries())
      expect([...tokens.subarray(offsets[k], offsets[k + 1])]).toEqual([
        ...vocab.encode(tokenizer.tokenize(text)),
      ]);
    // No word of the test caption is in a train or val caption.
    expect(meta.tokensBySplit.test).toEqual({ tokens: 4, unknown: 4 });
    expect(meta.tokensBySplit.train.unknown).toBe(0);
    for (const [name, entry] of Object.entries(meta.files))
      expect(sha(await readFile(join(out, name)))).toBe(entry.sha256);

    const fixture = JSON.parse(await readFile(join(out, FIXTURE_SENTENCES_FILE), 'utf8')) as Array<{
      text: string;
      ids: number[];
    }>;
    expect(fixture.map((f) => f.text)).toEqual([...FIXTURE_SENTENCES]);
    expect(fixture[1]?.ids).toEqual([...vocab.encode(tokenizer.tokenize(FIXTURE_SENTENCES[1]))]);

    // Same inputs, same bytes.
    const first = await readFile(join(out, 'meta.json'));
    await prepareFlickr8kJapanese({ images, out, dataDir: data, minCount: 1 });
    expect(sha(await readFile(join(out, 'meta.json')))).toBe(sha(first));
  });

  it('refuses an images folder that is not an English prepared data set', async () => {
    await expect(
      prepareFlickr8kJapanese({ images: join(root, 'nowhere'), out: join(root, 'x'), dataDir: data }),
    ).rejects.toThrow(/no English prepared data set here/);
  });
});

describe(`the real Flickr8k Japanese captions${skipNote({ shared: true })}`, () => {
  it.skipIf(!shared)(
    'pair with the English file line for line, and every caption has words for the tokenizer',
    async () => {
      const captions = await readJapaneseCaptions();
      expect(captions.length).toBe(40_455);
      let empty = 0;
      let longest = 0;
      for (const c of captions) {
        if (tokenizer.tokenize(c.text).length === 0) empty++;
        longest = Math.max(longest, c.text.length);
      }
      expect(empty).toBe(0);
      // The tokenizer analyzes long text in pieces; training captions must never be cut.
      expect(longest).toBeLessThan(256);
    },
  );
});
