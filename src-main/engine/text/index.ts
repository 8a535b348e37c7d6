export { type SentenceAnalysis, SentenceEncoder, type SentenceEncoderOptions } from './encoder.ts';
export { TOKENIZER_VERSION, tokenizeEnglish } from './tokenize.ts';
export { PAD, PAD_ID, UNK, UNK_ID, Vocabulary, VocabularyError } from './vocabulary.ts';
