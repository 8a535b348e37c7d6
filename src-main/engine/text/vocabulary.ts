import { SagasuError } from '../errors.ts';

const PAD = '<pad>';
const UNK = '<unk>';
export const PAD_ID = 0;
export const UNK_ID = 1;

/** A vocabulary file that is not one token per line with <pad> and <unk> first. */
export class VocabularyError extends SagasuError {
  constructor(
    readonly file: string,
    readonly line: number,
    reason: string,
  ) {
    super('invalid-vocabulary', `${file}:${line}`, reason);
  }
}

// Code-unit order, not localeCompare: the ids must not depend on the ICU build or the user's locale.
const byCode = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Token <-> id. Id 0 is padding (what a batch of captions is filled with), 1 stands for every word the
 * training captions did not have often enough; then words by descending count, ties in code-unit order, so
 * the same captions always give the same ids.
 */
export class Vocabulary {
  private readonly ids: Map<string, number>;

  private constructor(readonly tokens: readonly string[]) {
    this.ids = new Map(tokens.map((t, i) => [t, i]));
  }

  /** Words seen at least minCount times; fewer than that and the model cannot learn an embedding for them. */
  static build(tokenLists: Iterable<readonly string[]>, minCount = 1): Vocabulary {
    const counts = new Map<string, number>();
    for (const list of tokenLists) for (const t of list) counts.set(t, (counts.get(t) ?? 0) + 1);
    const words = [...counts]
      .filter(([t, c]) => c >= minCount && t !== PAD && t !== UNK)
      .sort(([a, ca], [b, cb]) => cb - ca || byCode(a, b))
      .map(([t]) => t);
    return new Vocabulary([PAD, UNK, ...words]);
  }

  /** One token per line, the id being the line index: the file the Python training code reads too. */
  static parse(text: string, file: string): Vocabulary {
    const lines = text.split('\n');
    // One final newline ends the last line; it is not an empty token.
    if (lines.at(-1) === '') lines.pop();
    const seen = new Map<string, number>();
    for (const [i, token] of lines.entries()) {
      const line = i + 1;
      if (i === PAD_ID && token !== PAD)
        throw new VocabularyError(file, line, `expected "${PAD}" on the first line, got "${token}"`);
      if (i === UNK_ID && token !== UNK)
        throw new VocabularyError(file, line, `expected "${UNK}" on the second line, got "${token}"`);
      if (token === '') throw new VocabularyError(file, line, 'empty line: every line must hold one token');
      if (/\s/u.test(token))
        throw new VocabularyError(file, line, `"${token}" contains white space; one token per line`);
      const earlier = seen.get(token);
      if (earlier !== undefined)
        throw new VocabularyError(file, line, `"${token}" is already on line ${earlier}`);
      seen.set(token, line);
    }
    if (lines.length < 2)
      throw new VocabularyError(file, lines.length + 1, `missing "${lines.length === 0 ? PAD : UNK}"`);
    return new Vocabulary(lines);
  }

  get size(): number {
    return this.tokens.length;
  }

  /** A literal "<pad>" in the text is a word like any other unknown one, never padding. */
  id(token: string): number {
    const id = this.ids.get(token);
    return id === undefined || id === PAD_ID ? UNK_ID : id;
  }

  has(token: string): boolean {
    return this.ids.has(token) && token !== PAD && token !== UNK;
  }

  encode(tokens: readonly string[]): Int32Array {
    const out = new Int32Array(tokens.length);
    for (const [i, t] of tokens.entries()) out[i] = this.id(t);
    return out;
  }

  toText(): string {
    return `${this.tokens.join('\n')}\n`;
  }
}
