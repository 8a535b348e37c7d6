import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { fileErrorClass } from '../errors.ts';
import { sha256Hex } from '../files.ts';
import type { Vocabulary } from './vocabulary.ts';

const SUBSTITUTES_FORMAT = 'sagasu-substitutes-v1';
export const SUBSTITUTES_FILE = 'substitutes.tsv';
const MANIFEST = 'manifest.json';

/** A word-vector folder (models/words/<model>) that is damaged: named by file (and line), with the reason. */
export class WordVectorError extends fileErrorClass('invalid-word-vectors') {}

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const schema = z.looseObject({
  format: z.literal(SUBSTITUTES_FORMAT),
  model: z.string().min(1),
  vocabSha256: hex64,
  words: z.number().int().positive(),
  /** Stand-ins less similar than this (cosine in word-vector space) are left out: the word stays <unk>. */
  minSimilarity: z.number().min(-1).max(1).default(0),
  files: z.object({ [SUBSTITUTES_FILE]: z.object({ sha256: hex64, bytes: z.number().int().min(0) }) }),
});

/**
 * Stand-ins for words the sentence encoder never saw: for each of the most frequent words the vocabulary
 * lacks, the vocabulary word nearest to it in a pretrained word-vector space (scripts/words-build.py), read by
 * the encoder in its place, so "giraffe" means "elephant" rather than nothing.
 *
 * `open` gives undefined when the folder has no manifest (unknown words stay <unk>, as before), and `stale`
 * when it was built against another vocabulary: a retrained model keeps working, without stand-ins, until the
 * folder is rebuilt. A damaged folder is a WordVectorError naming the file.
 */
export class WordSubstitutes {
  private constructor(
    readonly dir: string,
    private readonly ids: ReadonlyMap<string, number>,
  ) {}

  static async open(
    dir: string,
    vocabulary: Vocabulary,
    vocabSha256: string,
  ): Promise<WordSubstitutes | { stale: string } | undefined> {
    const manifestFile = join(dir, MANIFEST);
    let text: string;
    try {
      text = await readFile(manifestFile, 'utf8');
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new WordVectorError(manifestFile, `cannot be read: ${(cause as Error).message}`, { cause });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (cause) {
      throw new WordVectorError(manifestFile, `not JSON: ${(cause as Error).message}`, { cause });
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new WordVectorError(
        manifestFile,
        `not a word-vector manifest: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`,
      );
    }
    const manifest = parsed.data;
    if (manifest.vocabSha256 !== vocabSha256)
      return {
        stale: `${manifestFile} was built against another vocabulary than the model's; unknown words read as <unk> until it is rebuilt (scripts/words-build.py)`,
      };
    const file = join(dir, SUBSTITUTES_FILE);
    let bytes: Uint8Array;
    try {
      bytes = await readFile(file);
    } catch (cause) {
      throw new WordVectorError(file, `missing, though ${MANIFEST} lists it`, { cause });
    }
    const expected = manifest.files[SUBSTITUTES_FILE];
    const actual = sha256Hex(bytes);
    if (actual !== expected.sha256 || bytes.length !== expected.bytes)
      throw new WordVectorError(
        file,
        `damaged: sha256 ${actual}, ${bytes.length} bytes; ${MANIFEST} says ${expected.sha256}, ${expected.bytes} bytes; restore the folder or rebuild it (scripts/words-build.py)`,
      );
    const lines = new TextDecoder().decode(bytes).split('\n');
    if (lines.at(-1) === '') lines.pop();
    if (lines.length !== manifest.words)
      throw new WordVectorError(file, `holds ${lines.length} words, ${MANIFEST} says ${manifest.words}`);
    const ids = new Map<string, number>();
    for (const [k, line] of lines.entries()) {
      const [word, stand, similarity, extra] = line.split('\t');
      const where = `${file}:${k + 1}`;
      const cosine = Number(similarity);
      if (!word || !stand || !similarity || !Number.isFinite(cosine) || extra !== undefined)
        throw new WordVectorError(
          where,
          'expected three tab-separated fields: word, vocabulary word, cosine',
        );
      if (vocabulary.has(word)) throw new WordVectorError(where, `"${word}" is in the vocabulary already`);
      if (!vocabulary.has(stand))
        throw new WordVectorError(where, `stand-in "${stand}" for "${word}" is not in the vocabulary`);
      if (cosine >= manifest.minSimilarity) ids.set(word, vocabulary.id(stand));
    }
    return new WordSubstitutes(dir, ids);
  }

  /** Words that read as a stand-in (those at or above the manifest's minSimilarity). */
  get size(): number {
    return this.ids.size;
  }

  /** The vocabulary id read in place of `word`, or undefined when the word vectors do not know it either. */
  idOf(word: string): number | undefined {
    return this.ids.get(word);
  }
}
