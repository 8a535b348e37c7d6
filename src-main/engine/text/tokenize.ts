/**
 * Recorded in every prepared data set and model: a change to the rules below makes old token ids
 * meaningless, so it must force re-preparation and retraining.
 */
export const TOKENIZER_VERSION = 'en-1';

// Typed and pasted text carries typographic apostrophes (macOS and phones turn ' into ’); NFKC leaves them.
const APOSTROPHE_VARIANTS = /[\u2018\u2019\u201B\u02BC\u0060\u00B4]/gu;

/**
 * The Flickr8k captions are already split Penn-Treebank style ("dog 's", "do n't"), while people type
 * "dog's" and "don't". Splitting these clitics off the word makes both spellings give the same tokens,
 * so a query reaches the GRU as the training captions did. The lookahead keeps a quote such as 'slide from
 * being read as the clitic 's.
 */
const W = '[\\p{L}\\p{N}\\p{M}]';
const TOKEN = new RegExp(`'(?:s|re|ve|ll|d|m)(?!${W})|${W}+(?:'${W}+)*`, 'gu');
const CLITIC = /^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$/u;

/**
 * English words of a caption or a query: NFKC, lower case, runs of letters/digits/marks.
 *
 * - Punctuation separates words and is dropped: captions end with " ." and queries don't, and the GRU's
 *   last state must not depend on that.
 * - Hyphens separate words ("t-shirt" -> "t", "shirt"): on the Flickr8k val captions this gives fewer
 *   unknown tokens than keeping compounds whole (1.92 % vs 2.02 % with the train+val vocabulary at min
 *   count 4; 2.87 % vs 2.99 % with the train vocabulary alone), because compound parts are common words
 *   and most compounds are rare; it also makes "t shirt" and "t-shirt" the same query.
 * - Apostrophes: the clitics 's 're 've 'll 'd 'm n't become their own tokens ("dog's" -> "dog", "'s";
 *   "don't" -> "do", "n't"), other in-word apostrophes stay ("o'clock"), stray ones are dropped.
 * - Digits are words ("3.5" -> "3", "5"; "1st" stays whole).
 */
export function tokenizeEnglish(text: string): string[] {
  const normalized = text.normalize('NFKC').toLowerCase().replace(APOSTROPHE_VARIANTS, "'");
  const tokens: string[] = [];
  for (const [word] of normalized.matchAll(TOKEN)) {
    const clitic = CLITIC.exec(word);
    if (clitic) tokens.push(clitic[1] as string, clitic[2] as string);
    else tokens.push(word);
  }
  return tokens;
}
