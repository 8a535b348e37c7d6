import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unseenWords } from '../src-main/engine/fusion/index.ts';
import { jointModelsDir } from '../src-main/engine/joint/index.ts';
import { modelsDir } from '../src-main/engine/paths.ts';
import { SentenceEncoder, SUBSTITUTES_FILE, UNK_ID, WordVectorError } from '../src-main/engine/text/index.ts';
import { errorOf } from './helpers/joint-parity.ts';

const model = join(jointModelsDir, 'fne');
const words = join(modelsDir, 'words', 'en');
const cosine = (v: Float32Array, a: number, b: number, dim: number) => {
  let s = 0;
  for (let j = 0; j < dim; j++) s += (v[a * dim + j] as number) * (v[b * dim + j] as number);
  return s;
};

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'sagasu-words-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** A copy of the committed folder, changed by `edit`, and the error opening the encoder with it gives. */
async function openDamaged(name: string, edit: (dir: string) => Promise<void>): Promise<unknown> {
  const dir = join(scratch, name);
  await cp(words, dir, { recursive: true });
  await edit(dir);
  return errorOf(() => SentenceEncoder.open(model, { providers: ['cpu'], wordsDir: dir }));
}

describe('stand-ins for words the sentence encoder never saw (models/words/en)', () => {
  it('still counts a word read through a stand-in as unseen by the encoder, so search leans on its concepts', async () => {
    const encoder = await SentenceEncoder.open(model, { providers: ['cpu'] });
    try {
      const unseen = unseenWords(encoder.analyze('two youngsters and a xqzzy on the beach'));
      expect([...unseen].sort()).toEqual(['xqzzy', 'youngsters']);
    } finally {
      await encoder.close();
    }
  });

  it('reads an unknown word as a related vocabulary word, so its sentence lands near the synonym one', async () => {
    const plain = await SentenceEncoder.open(model, { providers: ['cpu'], wordsDir: null });
    const expanded = await SentenceEncoder.open(model, { providers: ['cpu'] });
    try {
      expect(plain.vocabulary.has('youngsters')).toBe(false);
      expect(expanded.substituteWords).toBeGreaterThan(3_000);
      const analysis = expanded.analyze('two youngsters playing soccer in a park');
      expect(analysis.unknown).toEqual([]);
      expect(analysis.substituted).toEqual([{ word: 'youngsters', as: 'teenagers' }]);
      expect(analysis.ids).not.toContain(UNK_ID);
      expect(plain.analyze('two youngsters playing soccer in a park').unknown).toEqual(['youngsters']);

      const texts = [
        'two youngsters playing soccer in a park',
        'two teenagers playing soccer in a park',
        'two dogs playing soccer in a park',
      ];
      const dim = expanded.dim;
      const withStandIn = await expanded.encode(texts);
      const withUnk = await plain.encode(texts);
      // The synonym's sentence is closer to the stand-in's than to the <unk> one, and closer than an unrelated word's.
      expect(cosine(withStandIn, 0, 1, dim)).toBeGreaterThan(cosine(withUnk, 0, 1, dim));
      expect(cosine(withStandIn, 0, 1, dim)).toBeGreaterThan(cosine(withStandIn, 0, 2, dim));
      // Sentences of known words are exactly as before.
      expect(Array.from(withStandIn.subarray(dim))).toEqual(Array.from(withUnk.subarray(dim)));
      // Words the word vectors do not know stay <unk>.
      expect(expanded.analyze('qzxv blorptangle').unknown).toEqual(['qzxv', 'blorptangle']);
      // Prepared data and the drift check read the vocabulary's own ids.
      expect(expanded.vocabularyIds('a youngsters')[1]).toBe(UNK_ID);
    } finally {
      await Promise.all([plain.close(), expanded.close()]);
    }
  });

  it("leaves a word whose nearest vocabulary word is less similar than the manifest's minSimilarity as <unk>", async () => {
    const manifest = JSON.parse(await readFile(join(words, 'manifest.json'), 'utf8'));
    // giraffe -> elephant at cosine 0.62 (see substitutes.tsv), under the shipped threshold.
    expect(manifest.minSimilarity).toBeGreaterThan(0.62);
    const loose = join(scratch, 'loose');
    await cp(words, loose, { recursive: true });
    await writeFile(join(loose, 'manifest.json'), JSON.stringify({ ...manifest, minSimilarity: 0 }));
    const strict = await SentenceEncoder.open(model, { providers: ['cpu'] });
    const all = await SentenceEncoder.open(model, { providers: ['cpu'], wordsDir: loose });
    try {
      expect(strict.analyze('a tall giraffe').unknown).toEqual(['giraffe']);
      expect(all.analyze('a tall giraffe').substituted).toEqual([{ word: 'giraffe', as: 'elephant' }]);
      expect(all.substituteWords).toBe(manifest.words);
      expect(strict.substituteWords).toBe(manifest.wordsAtMinSimilarity);
    } finally {
      await Promise.all([strict.close(), all.close()]);
    }
  });

  it('keeps the default path when the folder is absent or built against another vocabulary', async () => {
    const empty = join(scratch, 'empty');
    const stale = join(scratch, 'stale');
    await cp(words, stale, { recursive: true });
    const manifest = JSON.parse(await readFile(join(stale, 'manifest.json'), 'utf8'));
    await writeFile(
      join(stale, 'manifest.json'),
      JSON.stringify({ ...manifest, vocabSha256: '0'.repeat(64) }),
    );
    for (const wordsDir of [empty, stale]) {
      const encoder = await SentenceEncoder.open(model, { providers: ['cpu'], wordsDir });
      try {
        expect(encoder.substituteWords).toBe(0);
        expect(encoder.analyze('a red automobile').unknown).toEqual(['automobile']);
        expect(encoder.tokenIds('a red automobile')[2]).toBe(UNK_ID);
        if (wordsDir === stale) expect(encoder.substitutesNote).toMatch(/another vocabulary.*words-build/);
        else expect(encoder.substitutesNote).toBeUndefined();
      } finally {
        await encoder.close();
      }
    }
  });

  it('refuses a damaged folder with a WordVectorError naming the file', async () => {
    const flipped = await openDamaged('flipped', async (dir) => {
      const file = join(dir, SUBSTITUTES_FILE);
      const bytes = await readFile(file);
      bytes[100] = (bytes[100] as number) ^ 1;
      await writeFile(file, bytes);
    });
    expect(flipped).toBeInstanceOf(WordVectorError);
    expect(flipped).toMatchObject({ file: join(scratch, 'flipped', SUBSTITUTES_FILE) });
    expect((flipped as Error).message).toMatch(/damaged: sha256/);

    const truncated = await openDamaged('truncated', async (dir) => {
      const file = join(dir, 'manifest.json');
      await writeFile(file, (await readFile(file, 'utf8')).slice(0, 40));
    });
    expect(truncated).toBeInstanceOf(WordVectorError);
    expect(truncated).toMatchObject({ file: join(scratch, 'truncated', 'manifest.json') });
    expect((truncated as Error).message).toMatch(/not JSON/);

    const missing = await openDamaged('missing', (dir) => rm(join(dir, SUBSTITUTES_FILE)));
    expect(missing).toBeInstanceOf(WordVectorError);
    expect((missing as Error).message).toMatch(/missing/);

    // A line whose stand-in is not a vocabulary word, with the manifest's sha256 updated to match it.
    const edited = await openDamaged('edited', async (dir) => {
      const file = join(dir, SUBSTITUTES_FILE);
      const text = (await readFile(file, 'utf8')).replace(/^([^\t]+)\t[^\t]+\t/u, '$1\tzzzqqq\t');
      await writeFile(file, text);
      const { createHash } = await import('node:crypto');
      const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
      m.files[SUBSTITUTES_FILE] = {
        sha256: createHash('sha256').update(text).digest('hex'),
        bytes: Buffer.byteLength(text),
      };
      await writeFile(join(dir, 'manifest.json'), JSON.stringify(m));
    });
    expect(edited).toBeInstanceOf(WordVectorError);
    expect(edited).toMatchObject({ file: `${join(scratch, 'edited', SUBSTITUTES_FILE)}:1` });
    expect((edited as Error).message).toMatch(/"zzzqqq".*not in the vocabulary/);
  });
});
