import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { type OnnxOptions, openSession, type ProviderName } from '../cnn/index.ts';
import { ArgumentError, ModelError } from '../errors.ts';
import { sha256Hex } from '../files.ts';
import {
  floatOutput,
  type JointManifest,
  MANIFEST_FILE,
  readJointManifest,
  readVerified,
  requireIo,
  TEXT_ENCODER_FILE,
  VOCAB_FILE,
} from '../modelfiles/index.ts';
import { modelsDir } from '../paths.ts';
import { JA_TOKENIZER_VERSION, japaneseTokenizer } from './japanese.ts';
import type { Language } from './language.ts';
import { WordSubstitutes } from './substitutes.ts';
import { TOKENIZER_VERSION, tokenizeEnglish } from './tokenize.ts';
import { PAD_ID, UNK_ID, Vocabulary } from './vocabulary.ts';

/**
 * Words of a sentence the GRU reads; the rest is dropped. Captions have at most ~40, and a pasted page
 * (the contract allows 10,000 characters) would otherwise cost seconds of GRU steps for a state that the
 * last few hundred words dominate anyway.
 */
export const MAX_SENTENCE_TOKENS = 256;

export interface SentenceEncoderOptions extends OnnxOptions {
  /** Sentences per ONNX run (default 128); only memory depends on it, never the vectors. */
  batchSize?: number;
  /**
   * English only: the folder of stand-ins for words the vocabulary lacks (scripts/words-build.py; default
   * models/words/en). One folder for every English encoder built on its vocabulary, so the FNE model and the
   * one-layer baseline read the same words and their A/B stays fair. null, or a folder without manifest.json:
   * every unknown word is <unk>.
   */
  wordsDir?: string | null;
}

/** What the encoder makes of a sentence before the network sees it. */
export interface SentenceAnalysis {
  tokens: string[];
  ids: Int32Array;
  /** Tokens the training vocabulary lacks and that have no stand-in; each became <unk>. */
  unknown: string[];
  /** Tokens the training vocabulary lacks, read as the vocabulary word nearest to them in word-vector space. */
  substituted: { word: string; as: string }[];
  /** Tokens past MAX_SENTENCE_TOKENS, not read (0 for any ordinary query). */
  dropped: number;
}

/** The app's tokenizer of each language, and the version its token ids are recorded under. */
const TOKENIZERS: Record<Language, { version: string; load: () => Promise<(text: string) => string[]> }> = {
  en: { version: TOKENIZER_VERSION, load: async () => tokenizeEnglish },
  ja: {
    version: JA_TOKENIZER_VERSION,
    load: async () => {
      const { tokenizer } = await japaneseTokenizer();
      return (text) => tokenizer.tokenize(text);
    },
  },
};

/**
 * Sentences -> unit vectors in a joint model's space: the app's tokenizer of the model's language (English,
 * or Japanese for a manifest with language "ja"; opening a Japanese encoder loads the dictionary once per
 * process), the model's vocabulary, then the exported GRU (text_encoder.onnx) in onnxruntime.
 *
 * A sentence with no words at all (empty, or only punctuation) is refused with an ArgumentError on `sentence`:
 * the GRU has no state to return for zero tokens, and any vector made up for it would match photos at random.
 * A sentence whose words are all unknown still encodes (as <unk> tokens, exactly as training saw rare words);
 * `analyze()` lists the unknown words so a caller can tell the person their query meant little to the model.
 */
export class SentenceEncoder {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly manifest: JointManifest,
    readonly vocabulary: Vocabulary,
    readonly provider: ProviderName,
    private readonly batchSize: number,
    /** text_encoder.onnx, for errors that name it. */
    readonly file: string,
    readonly language: Language,
    private readonly tokenize: (text: string) => string[],
    private readonly substitutes?: WordSubstitutes,
    /** Why the stand-ins beside the model are not used (built against another vocabulary). */
    readonly substitutesNote?: string,
  ) {}

  static async open(modelDir: string, options: SentenceEncoderOptions = {}): Promise<SentenceEncoder> {
    const batchSize = options.batchSize ?? 128;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new ArgumentError('batchSize', `expected a positive integer, got ${batchSize}`);
    const manifest = await readJointManifest(modelDir);
    const manifestFile = join(modelDir, MANIFEST_FILE);
    const language: Language = manifest.language ?? 'en';
    const tokenizer = TOKENIZERS[language];
    if (manifest.tokenizerVersion && manifest.tokenizerVersion !== tokenizer.version)
      throw new ModelError(
        'invalid-model',
        manifestFile,
        `trained on tokenizer ${manifest.tokenizerVersion}, but this app tokenizes ${language} with ${tokenizer.version}: its token ids would mean other words; retrain or use a matching app`,
      );
    const vocabFile = join(modelDir, VOCAB_FILE);
    const vocabBytes = await readVerified(modelDir, manifest, VOCAB_FILE);
    const vocabulary = Vocabulary.parse(new TextDecoder().decode(vocabBytes), vocabFile);
    if (vocabulary.size !== manifest.vocabSize)
      throw new ModelError(
        'invalid-model',
        vocabFile,
        `holds ${vocabulary.size} tokens, but manifest.json says the encoder has ${manifest.vocabSize}`,
      );
    const modelFile = join(modelDir, TEXT_ENCODER_FILE);
    const bytes = await readVerified(modelDir, manifest, TEXT_ENCODER_FILE);
    const { session, provider } = await openSession(
      modelFile,
      bytes,
      `text encoder ${manifest.name}`,
      options,
    );
    requireIo(session, modelFile, ['tokens', 'lengths'], 'embedding');
    let tokenize: (text: string) => string[];
    let substitutes: WordSubstitutes | { stale: string } | undefined;
    try {
      tokenize = await tokenizer.load();
      const wordsDir = options.wordsDir === undefined ? join(modelsDir, 'words', 'en') : options.wordsDir;
      if (language === 'en' && wordsDir !== null)
        substitutes = await WordSubstitutes.open(wordsDir, vocabulary, sha256Hex(vocabBytes));
    } catch (error) {
      await session.release();
      throw error;
    }
    return new SentenceEncoder(
      session,
      manifest,
      vocabulary,
      provider,
      batchSize,
      modelFile,
      language,
      tokenize,
      substitutes instanceof WordSubstitutes ? substitutes : undefined,
      substitutes && 'stale' in substitutes ? substitutes.stale : undefined,
    );
  }

  /** How many words beyond the vocabulary this encoder reads through a stand-in (0 without the folder). */
  get substituteWords(): number {
    return this.substitutes?.size ?? 0;
  }

  /** Dimension of the joint space. */
  get dim(): number {
    return this.manifest.dim;
  }

  analyze(text: string): SentenceAnalysis {
    const all = this.tokenize(text);
    const tokens = all.slice(0, MAX_SENTENCE_TOKENS);
    const ids = this.idsOf(tokens);
    return {
      tokens,
      ids,
      unknown: tokens.filter((_, k) => ids[k] === UNK_ID),
      substituted: tokens.flatMap((word, k) =>
        this.vocabulary.has(word) || ids[k] === UNK_ID
          ? []
          : [{ word, as: this.vocabulary.tokens[ids[k] as number] as string }],
      ),
      dropped: all.length - tokens.length,
    };
  }

  /**
   * Token ids of a sentence as the model reads them (the first MAX_SENTENCE_TOKENS); empty when it has no words.
   * A word the vocabulary lacks reads as its stand-in where there is one, else as <unk>.
   */
  tokenIds(text: string): Int32Array {
    return this.idsOf(this.tokenize(text).slice(0, MAX_SENTENCE_TOKENS));
  }

  /** The ids of the vocabulary alone (no stand-ins): what training and prepared data hold. */
  vocabularyIds(text: string): Int32Array {
    return this.vocabulary.encode(this.tokenize(text).slice(0, MAX_SENTENCE_TOKENS));
  }

  private idsOf(tokens: readonly string[]): Int32Array {
    const ids = this.vocabulary.encode(tokens);
    if (this.substitutes)
      for (const [k, word] of tokens.entries())
        if (ids[k] === UNK_ID) ids[k] = this.substitutes.idOf(word) ?? UNK_ID;
    return ids;
  }

  /** Row-major [texts.length, dim] unit vectors, in input order. */
  async encode(texts: readonly string[]): Promise<Float32Array> {
    const ids = texts.map((text, k) => {
      const t = this.tokenIds(text);
      if (t.length === 0)
        throw new ArgumentError(
          'sentence',
          `${texts.length > 1 ? `#${k + 1} ` : ''}${JSON.stringify(text)} has no words to search for (only spaces or punctuation)`,
        );
      return t;
    });
    return this.encodeIds(ids);
  }

  /**
   * Row-major [sentences.length, dim] from token ids. Sentences are batched by length, so padding stays short;
   * the GRU is causal and each vector is read at its own last token, so the batch never changes a vector.
   */
  async encodeIds(sentences: readonly Int32Array[]): Promise<Float32Array> {
    const dim = this.dim;
    const vocabSize = this.vocabulary.size;
    for (const [k, s] of sentences.entries()) {
      if (s.length === 0) throw new ArgumentError('sentence', `#${k + 1} has no tokens`);
      for (const id of s)
        if (!Number.isInteger(id) || id <= PAD_ID || id >= vocabSize)
          throw new ArgumentError('tokens', `sentence #${k + 1} holds id ${id}, outside 1..${vocabSize - 1}`);
    }
    const out = new Float32Array(sentences.length * dim);
    const order = [...sentences.keys()].sort(
      (a, b) => (sentences[a] as Int32Array).length - (sentences[b] as Int32Array).length || a - b,
    );
    for (let start = 0; start < order.length; start += this.batchSize) {
      const batch = order.slice(start, start + this.batchSize);
      const length = Math.max(...batch.map((k) => (sentences[k] as Int32Array).length));
      const tokens = new BigInt64Array(batch.length * length);
      const lengths = new BigInt64Array(batch.length);
      for (const [row, k] of batch.entries()) {
        const s = sentences[k] as Int32Array;
        for (let t = 0; t < s.length; t++) tokens[row * length + t] = BigInt(s[t] as number);
        lengths[row] = BigInt(s.length);
      }
      const result = await this.session.run({
        tokens: new ort.Tensor('int64', tokens, [batch.length, length]),
        lengths: new ort.Tensor('int64', lengths, [batch.length]),
      });
      const data = floatOutput(result, 'embedding', this.file, [batch.length, dim]);
      for (const [row, k] of batch.entries()) out.set(data.subarray(row * dim, (row + 1) * dim), k * dim);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
