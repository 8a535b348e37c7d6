export type Language = 'en' | 'ja';
export const LANGUAGES: readonly Language[] = ['en', 'ja'];

// Kana (both scripts, half-width katakana included), kanji and the Japanese iteration marks. One such
// character makes a query Japanese: "iPhoneで撮った犬" is a Japanese sentence with a brand name in it, and
// the English encoder would see only "iphone".
const JAPANESE = /[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}々〆ヵヶー]/u;

/** The encoder a query goes to, from its script alone: Japanese as soon as it holds kana or kanji. */
export function detectLanguage(text: string): Language {
  return JAPANESE.test(text) ? 'ja' : 'en';
}
