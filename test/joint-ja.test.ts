/**
 * The shipped Japanese sentence encoder (models/joint/fne-ja): onnxruntime-node against its PyTorch fixtures,
 * the app tokenizer reaching the fixture ids from the text, how JointModel pairs it with the English FNE
 * model, and every kind of bad query.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArgumentError, ModelError } from '../src-main/engine/errors.ts';
import {
  JointModel,
  jointModelsDir,
  listJointModels,
  listTextEncoders,
} from '../src-main/engine/joint/index.ts';
import { MANIFEST_FILE, TEXT_ENCODER_FILE } from '../src-main/engine/modelfiles/index.ts';
import { JA_TOKENIZER_VERSION, MAX_SENTENCE_TOKENS, SentenceEncoder } from '../src-main/engine/text/index.ts';
import { errorOf, type Fixtures, ids, maxAbsDiff, row, TOLERANCE } from './helpers/joint-parity.ts';

const jaDir = join(jointModelsDir, 'fne-ja');
const fneDir = join(jointModelsDir, 'fne');

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, k) => s + x * (b[k] as number), 0);

describe('models/joint/fne-ja: onnxruntime-node vs its PyTorch fixtures', () => {
  let encoder: SentenceEncoder;
  let fixtures: Fixtures;
  beforeAll(async () => {
    fixtures = JSON.parse(await readFile(join(jaDir, 'fixtures.json'), 'utf8')) as Fixtures;
    encoder = await SentenceEncoder.open(jaDir, { providers: ['cpu'] });
  });
  afterAll(async () => {
    await encoder?.close();
  });

  it('is a Japanese text-only encoder of the FNE model, dimension 512, tokenizer ja-1', async () => {
    const manifest = JSON.parse(await readFile(join(jaDir, MANIFEST_FILE), 'utf8'));
    expect(encoder.language).toBe('ja');
    expect(encoder.dim).toBe(512);
    expect(manifest.tokenizerVersion).toBe(JA_TOKENIZER_VERSION);
    expect(manifest.imageModel.name).toBe('fne');
    expect(manifest.onnx.opset).toBe(17);
    expect(manifest.weights).toBe('fp16');
  });

  it('encodes one sentence, a padded batch of 4 and each of the 4 alone as PyTorch did (<= 1e-5)', async () => {
    const { single, batch, alone } = fixtures.text;
    expect(maxAbsDiff(await encoder.encodeIds(ids(single)), single.embedding)).toBeLessThanOrEqual(TOLERANCE);
    expect(maxAbsDiff(await encoder.encodeIds(ids(batch)), batch.embedding)).toBeLessThanOrEqual(TOLERANCE);
    const session = await ort.InferenceSession.create(join(jaDir, TEXT_ENCODER_FILE), {
      executionProviders: ['cpu'],
    });
    try {
      const [b, l] = [batch.tokens.length, (batch.tokens[0] as number[]).length];
      const result = await session.run({
        tokens: new ort.Tensor('int64', BigInt64Array.from(batch.tokens.flat(), BigInt), [b, l]),
        lengths: new ort.Tensor('int64', BigInt64Array.from(batch.lengths, BigInt), [b]),
      });
      const padded = result.embedding?.data as Float32Array;
      expect(new Set(batch.lengths).size).toBeGreaterThan(1);
      expect(maxAbsDiff(padded, batch.embedding)).toBeLessThanOrEqual(TOLERANCE);
      for (const [r, one] of alone.entries()) {
        expect(maxAbsDiff(await encoder.encodeIds(ids(one)), one.embedding)).toBeLessThanOrEqual(TOLERANCE);
        expect(maxAbsDiff(row(padded, r, 512), one.embedding)).toBeLessThanOrEqual(TOLERANCE);
      }
    } finally {
      await session.release();
    }
  });

  it('reaches the fixture token ids and vectors from the Japanese text, through the app tokenizer', async () => {
    for (const f of [fixtures.text.single, ...fixtures.text.alone]) {
      const text = f.captions[0] as string;
      expect([...encoder.tokenIds(text)], text).toEqual([...(ids(f)[0] as Int32Array)]);
      expect(maxAbsDiff(await encoder.encode([text]), f.embedding)).toBeLessThanOrEqual(TOLERANCE);
    }
  });
});

describe('JointModel with the Japanese encoder beside it', () => {
  let model: JointModel;
  beforeAll(async () => {
    model = await JointModel.open(fneDir, { providers: ['cpu'] });
  });
  afterAll(async () => {
    await model?.close();
  });

  it('lists the Japanese encoder as a language of the FNE model, and not as a joint model of its own', async () => {
    expect(model.languages).toEqual(['en', 'ja']);
    const models = await listJointModels();
    expect(models).toContain(fneDir);
    expect(models).not.toContain(jaDir);
    expect(await listTextEncoders()).toEqual([jaDir]);
  });

  it('keeps English the default, and auto sends each sentence to the encoder of its script', async () => {
    const english = 'a dog runs on the beach';
    const japanese = '浜辺を走る犬';
    const en = await model.encodeSentences([english]);
    expect(maxAbsDiff(en, [Array.from(await model.text.encode([english]))])).toBe(0);
    const ja = await model.encodeSentences([japanese], { lang: 'ja' });
    const mixed = await model.encodeSentences([japanese, english, 'iPhoneで撮った犬'], { lang: 'auto' });
    expect(maxAbsDiff(row(mixed, 0, 512), [Array.from(ja)])).toBe(0);
    expect(maxAbsDiff(row(mixed, 1, 512), [Array.from(en)])).toBe(0);
    const iphone = await model.encodeSentences(['iPhoneで撮った犬'], { lang: 'ja' });
    expect(maxAbsDiff(row(mixed, 2, 512), [Array.from(iphone)])).toBe(0);
    // The two encoders put a sentence and its translation closer than unrelated sentences.
    const other = await model.encodeSentences(['赤いシャツを着た男の子が自転車に乗っている'], { lang: 'ja' });
    expect(dot(ja, en)).toBeGreaterThan(dot(other, en));
  });

  it('analyzes a sentence for the "unknown words" note, in the detected language', async () => {
    const a = await model.analyzeSentence('iPhoneで撮ったピカチュウ');
    expect(a.lang).toBe('ja');
    expect(a.tokens).toEqual(['iphone', 'で', '撮る', 'た', 'ピカチュウ']);
    expect(a.unknown).toEqual(['iphone', 'ピカチュウ']);
    const e = await model.analyzeSentence('a dog', 'en');
    expect(e).toMatchObject({ lang: 'en', tokens: ['a', 'dog'], unknown: [] });
    // The analysis encodes to the same vector as the sentence: search reads a query once.
    for (const analysis of [a, e]) {
      const text = analysis === a ? 'iPhoneで撮ったピカチュウ' : 'a dog';
      const again = await model.encodeSentences([text], { lang: analysis.lang });
      expect(maxAbsDiff(await model.encodeAnalysis(analysis), [Array.from(again)])).toBe(0);
    }
  });

  it('gives bad Japanese queries a clear message or a vector, never a crash', async () => {
    for (const query of ['', '。、！？', '😀🐶🎉', '\u3000\u3000\u3000']) {
      const error = await errorOf(() => model.encodeSentences([query], { lang: 'ja' }));
      expect(error, JSON.stringify(query)).toBeInstanceOf(ArgumentError);
      expect((error as Error).message).toMatch(/has no words to search for/);
      expect(await errorOf(() => model.encodeSentences([query], { lang: 'auto' }))).toBeInstanceOf(
        ArgumentError,
      );
    }
    // Half-width katakana reads as full-width.
    const half = await model.encodeSentences(['ﾎﾞｰﾙで遊ぶ犬'], { lang: 'ja' });
    const full = await model.encodeSentences(['ボールで遊ぶ犬'], { lang: 'ja' });
    expect(maxAbsDiff(half, [Array.from(full)])).toBe(0);
    // Unknown words only: encoded as <unk>, as training saw rare words; the analysis says so.
    const unknown = await model.analyzeSentence('ピカチュウ', 'ja');
    expect(unknown.unknown).toEqual(unknown.tokens);
    const v = await model.encodeSentences(['ピカチュウ'], { lang: 'ja' });
    expect(Math.abs(dot(v, v) - 1)).toBeLessThan(1e-5);
    // 10,000 characters: read up to MAX_SENTENCE_TOKENS words, the rest reported as dropped.
    const long = '浜辺を走る犬。'.repeat(1500).slice(0, 10_000);
    const analysis = await model.analyzeSentence(long, 'ja');
    expect(analysis.tokens.length).toBe(MAX_SENTENCE_TOKENS);
    expect(analysis.dropped).toBeGreaterThan(0);
    const lv = await model.encodeSentences([long], { lang: 'auto' });
    expect(Math.abs(dot(lv, lv) - 1)).toBeLessThan(1e-5);
  });

  it('refuses a language it has no encoder for, and an unknown language, on "lang"', async () => {
    for (const lang of ['fr', 'JA', '']) {
      const error = await errorOf(() => model.encodeSentences(['犬'], { lang: lang as 'ja' }));
      expect(error).toBeInstanceOf(ArgumentError);
      expect(error).toMatchObject({ subject: 'lang' });
    }
    const alone = await mkdtemp(join(tmpdir(), 'sagasu-ja-'));
    try {
      await cp(fneDir, join(alone, 'fne'), { recursive: true });
      const english = await JointModel.open(join(alone, 'fne'), { providers: ['cpu'] });
      try {
        expect(english.languages).toEqual(['en']);
        const error = await errorOf(() => english.encodeSentences(['犬'], { lang: 'ja' }));
        expect(error).toBeInstanceOf(ArgumentError);
        expect((error as Error).message).toMatch(/has no ja sentence encoder/);
      } finally {
        await english.close();
      }
      await expect(
        JointModel.open(join(alone, 'fne'), { providers: ['cpu'], textLanguage: 'ja' }),
      ).rejects.toBeInstanceOf(ArgumentError);
    } finally {
      await rm(alone, { recursive: true, force: true });
    }
  });

  it('refuses the Japanese encoder beside another version of the FNE model, and a tampered encoder', async () => {
    const root = await mkdtemp(join(tmpdir(), 'sagasu-ja-'));
    try {
      await cp(fneDir, join(root, 'fne'), { recursive: true });
      await cp(jaDir, join(root, 'fne-ja'), { recursive: true });
      const manifestFile = join(root, 'fne', MANIFEST_FILE);
      const original = await readFile(manifestFile, 'utf8');
      // Another version of the model: same name, other manifest bytes.
      await writeFile(manifestFile, original.replace('"name": "fne"', '"name": "fne" '));
      const retrained = await JointModel.open(join(root, 'fne'), { providers: ['cpu'] });
      try {
        expect(retrained.languages).toEqual(['en']);
        await expect(retrained.encodeSentences(['犬'], { lang: 'ja' })).rejects.toThrow(
          /trained against another version of fne/,
        );
      } finally {
        await retrained.close();
      }
      await writeFile(manifestFile, original);
      const onnx = join(root, 'fne-ja', TEXT_ENCODER_FILE);
      const bytes = await readFile(onnx);
      bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] as number) ^ 1;
      await writeFile(onnx, bytes);
      const model = await JointModel.open(join(root, 'fne'), { providers: ['cpu'] });
      try {
        expect(model.languages).toEqual(['en', 'ja']);
        const error = await errorOf(() => model.encodeSentences(['犬'], { lang: 'ja' }));
        expect(error).toBeInstanceOf(ModelError);
        expect(error).toMatchObject({ code: 'sha256-mismatch', file: onnx });
        // English still answers.
        expect((await model.encodeSentences(['a dog'])).length).toBe(512);
      } finally {
        await model.close();
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
