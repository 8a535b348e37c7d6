import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import kuromoji from 'kuromoji';
import { SagasuError } from '../errors.ts';

/**
 * Recorded in the Japanese prepared data and model: a change to the rules below (normalization, which
 * tokens are kept, base forms) or to the dictionary makes old token ids mean other words, so it must force
 * re-preparation and retraining.
 */
export const JA_TOKENIZER_VERSION = 'ja-1';

// Katakana/hiragana followed by a dash-like mark: people and converters write the long-vowel mark ー as a
// minus, a full-width hyphen, a box-drawing line or a wave dash (コーヒー, コ－ヒ－, コ〜ヒ〜), and the
// dictionary only knows ー.
const LONG_VOWEL = /([\p{Script=Hiragana}\p{Script=Katakana}])[-‐‑‒–—―−－─━〜～~∼ー]+/gu;

/**
 * NFKC (full-width Latin and digits to ASCII, half-width katakana to full-width, compatibility forms
 * unfolded), long-vowel marks unified and collapsed (コーーヒー -> コーヒー), Latin lower-cased as in the
 * English tokenizer.
 */
export function normalizeJapanese(text: string): string {
  return text.normalize('NFKC').replace(LONG_VOWEL, '$1ー').replace(ASTRAL_SYMBOL, ' ').toLowerCase();
}

// Emoji and other symbols beyond the BMP: the analyzer counts UTF-16 code units and merges the character
// after such a symbol into it ("犬😀が" loses が), so they become spaces first. Rare kanji beyond the BMP
// (𠮷) are letters and stay.
const ASTRAL_SYMBOL = /(?![\p{L}\p{N}])[\u{10000}-\u{10FFFF}]/gu;

// A token is kept when it has a letter or a digit; the analyzer tags punctuation, symbols and spaces as 記号,
// but emoji and some symbols come back as unknown nouns, so the content test catches what the tag misses.
const HAS_WORD = /[\p{L}\p{N}]/u;

type Analyzer = kuromoji.Tokenizer<kuromoji.IpadicFeatures>;

/**
 * The analyzer's time grows faster than linearly on long runs without punctuation (10,000 kana: ~10 s), so
 * text longer than this is analyzed in pieces cut after a space or punctuation mark where there is one. The
 * longest Flickr8k caption has 90 characters: training text never reaches the cut, so the ids are the same.
 */
const ANALYZE_CHARS = 256;
const BREAK = /[\s。、，．！？!?,.;:]/u;

function pieces(text: string): string[] {
  const out: string[] = [];
  let rest = text;
  while (rest.length > ANALYZE_CHARS) {
    let cut = ANALYZE_CHARS;
    for (let k = ANALYZE_CHARS - 1; k > ANALYZE_CHARS / 2; k--)
      if (BREAK.test(rest[k] as string)) {
        cut = k + 1;
        break;
      }
    // Never between the two halves of a surrogate pair (emoji, rare kanji).
    if (/[\uD800-\uDBFF]/.test(rest[cut - 1] as string)) cut--;
    out.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  out.push(rest);
  return out;
}

/** The analyzer's word list folder, wherever npm (or an app bundle) put the package. */
export function kuromojiDictDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('kuromoji/package.json')), 'dict');
}

interface JapaneseTokenizerLoad {
  tokenizer: JapaneseTokenizer;
  /** Wall-clock milliseconds to read and unpack the dictionary (about 17 MB of gzip files). */
  loadMs: number;
}

/**
 * Japanese words of a caption or a query: kuromoji (IPADIC) on the normalized text, each word's base form
 * (走っ -> 走る, so "走っている" and "走る" share a word; the surface form when the dictionary has no base
 * form, e.g. for unknown words), punctuation, symbols and spaces dropped. Data preparation writes the
 * training token ids with this class and the query path uses it too, so the ids are identical by
 * construction.
 */
export class JapaneseTokenizer {
  private constructor(private readonly analyzer: Analyzer) {}

  /** Reads the dictionary; prefer `japaneseTokenizer()`, which does it once per process. */
  static load(dictDir = kuromojiDictDir()): Promise<JapaneseTokenizerLoad> {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      kuromoji.builder({ dicPath: dictDir }).build((error, analyzer) => {
        if (error)
          reject(
            new SagasuError(
              'missing-dictionary',
              dictDir,
              `cannot load the Japanese dictionary: ${error.message}`,
              {
                cause: error,
              },
            ),
          );
        else resolve({ tokenizer: new JapaneseTokenizer(analyzer), loadMs: performance.now() - started });
      });
    });
  }

  tokenize(text: string): string[] {
    const normalized = normalizeJapanese(text);
    if (!HAS_WORD.test(normalized)) return [];
    const tokens: string[] = [];
    for (const piece of pieces(normalized))
      for (const t of this.analyzer.tokenize(piece)) {
        if (t.pos === '記号') continue;
        const word = t.basic_form && t.basic_form !== '*' ? t.basic_form : t.surface_form;
        // The vocabulary file holds one token per line, no white space inside one.
        const clean = word.replace(/\s+/gu, '');
        if (HAS_WORD.test(clean)) tokens.push(clean);
      }
    return tokens;
  }
}

let loading: Promise<JapaneseTokenizerLoad> | undefined;

/**
 * The process's one tokenizer, loaded on first use (the dictionary costs a few hundred milliseconds and
 * about 100 MB, which an English-only session never pays). A failed load is not cached, so a later call
 * tries again.
 */
export function japaneseTokenizer(): Promise<JapaneseTokenizerLoad> {
  if (!loading) {
    loading = JapaneseTokenizer.load();
    loading.catch(() => {
      loading = undefined;
    });
  }
  return loading;
}

export async function tokenizeJapanese(text: string): Promise<string[]> {
  return (await japaneseTokenizer()).tokenizer.tokenize(text);
}
