export {
  MAX_SENTENCE_TOKENS,
  type SentenceAnalysis,
  SentenceEncoder,
  type SentenceEncoderOptions,
} from './encoder.ts';
export {
  JA_TOKENIZER_VERSION,
  JapaneseTokenizer,
  japaneseTokenizer,
  kuromojiDictDir,
  normalizeJapanese,
  tokenizeJapanese,
} from './japanese.ts';
export { detectLanguage, LANGUAGES, type Language } from './language.ts';
export { SUBSTITUTES_FILE, WordSubstitutes, WordVectorError } from './substitutes.ts';
export { TOKENIZER_VERSION, tokenizeEnglish } from './tokenize.ts';
export { PAD_ID, UNK_ID, Vocabulary, VocabularyError } from './vocabulary.ts';
