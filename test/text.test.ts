import { describe, expect, it } from 'vitest';
import { SagasuError } from '../src-main/engine/errors.ts';
import {
  PAD_ID,
  TOKENIZER_VERSION,
  tokenizeEnglish,
  UNK_ID,
  Vocabulary,
  VocabularyError,
} from '../src-main/engine/text/index.ts';

describe('tokenizeEnglish', () => {
  it('lower-cases and drops punctuation, so a caption ending in " ." equals the same query without it', () => {
    expect(tokenizeEnglish('A black dog runs through the snow .')).toEqual(
      tokenizeEnglish('a black dog runs through the snow'),
    );
    expect(tokenizeEnglish('Dogs, cats; birds! "Quoted" (parens) why? a&b #1')).toEqual([
      'dogs',
      'cats',
      'birds',
      'quoted',
      'parens',
      'why',
      'a',
      'b',
      '1',
    ]);
    expect(tokenizeEnglish('dog.cat')).toEqual(['dog', 'cat']);
  });

  it('folds full-width and compatibility forms with NFKC', () => {
    expect(tokenizeEnglish('ＡＢＣ　ｄｏｇ１２')).toEqual(['abc', 'dog12']);
    expect(tokenizeEnglish('ﬁsh')).toEqual(['fish']);
  });

  it('splits clitics as the (Penn-Treebank-tokenized) captions do, whatever the apostrophe', () => {
    expect(tokenizeEnglish("A dog's toy")).toEqual(['a', 'dog', "'s", 'toy']);
    expect(tokenizeEnglish("a dog 's toy")).toEqual(['a', 'dog', "'s", 'toy']);
    expect(tokenizeEnglish('a dog’s toy')).toEqual(['a', 'dog', "'s", 'toy']);
    expect(tokenizeEnglish("Don't walk")).toEqual(['do', "n't", 'walk']);
    expect(tokenizeEnglish("do n't walk")).toEqual(['do', "n't", 'walk']);
    expect(tokenizeEnglish("they're we've I'll he'd I'm")).toEqual([
      'they',
      "'re",
      'we',
      "'ve",
      'i',
      "'ll",
      'he',
      "'d",
      'i',
      "'m",
    ]);
  });

  it('keeps other in-word apostrophes and drops quoting ones', () => {
    expect(tokenizeEnglish("five o'clock")).toEqual(['five', "o'clock"]);
    expect(tokenizeEnglish("the players ' ball")).toEqual(['the', 'players', 'ball']);
    expect(tokenizeEnglish("a 'slide' here")).toEqual(['a', 'slide', 'here']);
    expect(tokenizeEnglish("rock 'n roll")).toEqual(['rock', 'n', 'roll']);
  });

  it('splits at hyphens and dashes, so "t-shirt" and "t shirt" are the same query', () => {
    expect(tokenizeEnglish('A T-shirt')).toEqual(['a', 't', 'shirt']);
    expect(tokenizeEnglish('a t shirt')).toEqual(['a', 't', 'shirt']);
    expect(tokenizeEnglish('merry-go-round snow\u2010covered a\u2014b')).toEqual([
      'merry',
      'go',
      'round',
      'snow',
      'covered',
      'a',
      'b',
    ]);
  });

  it('keeps digits as words and splits numbers at punctuation', () => {
    expect(tokenizeEnglish('2 dogs, 3.5 km, the 1st place, 2,000 people')).toEqual([
      '2',
      'dogs',
      '3',
      '5',
      'km',
      'the',
      '1st',
      'place',
      '2',
      '000',
      'people',
    ]);
  });

  it('handles any Unicode letters', () => {
    expect(tokenizeEnglish('Café NAÏVE Straße')).toEqual(['café', 'naïve', 'straße']);
    expect(tokenizeEnglish('犬が走る')).toEqual(['犬が走る']);
    expect(tokenizeEnglish('cafe\u0301')).toEqual(['café']);
  });

  it('gives [] for empty, white-space-only and punctuation-only text', () => {
    expect(tokenizeEnglish('')).toEqual([]);
    expect(tokenizeEnglish('   \t\n')).toEqual([]);
    expect(tokenizeEnglish(' . , ! ? -- \' " ...')).toEqual([]);
  });

  it('has a version to record', () => {
    expect(TOKENIZER_VERSION).toBe('en-1');
  });
});

describe('Vocabulary', () => {
  const lists = [
    ['a', 'dog', 'runs'],
    ['a', 'cat', 'runs'],
    ['a', 'dog', 'sleeps'],
    ['zebra', 'b'],
  ];

  it('orders by descending count, ties in code-unit order, after <pad> and <unk>', () => {
    const vocab = Vocabulary.build(lists);
    expect(vocab.tokens).toEqual(['<pad>', '<unk>', 'a', 'dog', 'runs', 'b', 'cat', 'sleeps', 'zebra']);
    expect(vocab.size).toBe(9);
  });

  it('is the same whatever the order of the captions', () => {
    const forward = Vocabulary.build(lists, 1).toText();
    const reversed = Vocabulary.build(
      [...lists].reverse().map((l) => [...l].reverse()),
      1,
    ).toText();
    expect(reversed).toBe(forward);
  });

  it('keeps only words seen at least minCount times', () => {
    expect(Vocabulary.build(lists, 2).tokens).toEqual(['<pad>', '<unk>', 'a', 'dog', 'runs']);
    expect(Vocabulary.build(lists, 4).tokens).toEqual(['<pad>', '<unk>']);
  });

  it('encodes unknown words as 1 and never hands out 0', () => {
    const vocab = Vocabulary.build(lists, 2);
    expect(PAD_ID).toBe(0);
    expect(UNK_ID).toBe(1);
    const ids = vocab.encode(['a', 'dog', 'zebra', 'platypus', '<pad>']);
    expect(ids).toBeInstanceOf(Int32Array);
    expect([...ids]).toEqual([2, 3, 1, 1, 1]);
    expect(vocab.has('dog')).toBe(true);
    expect(vocab.has('zebra')).toBe(false);
  });

  it('round-trips through its text form, one token per line', () => {
    const vocab = Vocabulary.build(lists);
    const text = vocab.toText();
    expect(text.split('\n').slice(0, 3)).toEqual(['<pad>', '<unk>', 'a']);
    const parsed = Vocabulary.parse(text, 'vocab.txt');
    expect(parsed.tokens).toEqual(vocab.tokens);
    expect([...parsed.encode(['dog', 'sleeps', 'nope'])]).toEqual([
      ...vocab.encode(['dog', 'sleeps', 'nope']),
    ]);
    expect(Vocabulary.parse(text.trimEnd(), 'no-final-newline.txt').tokens).toEqual(vocab.tokens);
  });

  it('refuses a malformed file with a typed error naming the file and line', () => {
    const cases: [string, number, RegExp][] = [
      ['<pad>\n<unk>\ndog\n\ncat\n', 4, /empty line/],
      ['<pad>\n<unk>\ndog\ncat\ndog\n', 5, /already on line 3/],
      ['<pad>\n<unk>\nhot dog\n', 3, /white space/],
      ['<unk>\n<pad>\ndog\n', 1, /<pad>/],
      ['<pad>\ndog\n', 2, /<unk>/],
      ['<pad>\n', 2, /missing "<unk>"/],
      ['', 1, /missing "<pad>"/],
    ];
    for (const [text, line, reason] of cases) {
      let caught: unknown;
      try {
        Vocabulary.parse(text, '/data/vocab.txt');
      } catch (error) {
        caught = error;
      }
      expect(caught, JSON.stringify(text)).toBeInstanceOf(VocabularyError);
      expect(caught).toBeInstanceOf(SagasuError);
      const error = caught as VocabularyError;
      expect(error.code).toBe('invalid-vocabulary');
      expect(error.subject).toBe(`/data/vocab.txt:${line}`);
      expect(error.line).toBe(line);
      expect(error.message).toMatch(reason);
    }
  });
});
