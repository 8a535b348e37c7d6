import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { isStopWord, words } from '../describe/index.ts';
import { FileError } from '../errors.ts';
import { modelsDir } from '../paths.ts';
import { tokenizeJapanese } from '../text/index.ts';

/** The committed lexicon, built by `npm run concepts:build` from WordNet 3.0 and EDICT. */
export const CONCEPT_LEXICON_FILE = join(modelsDir, 'concepts', 'lexicon.json');

/** The classifier's classes: 0..999 in imagenet_synsets.txt order (the CNN's output i + 1; no background). */
export const CLASS_COUNT = 1000;

export class ConceptError extends FileError<'lexicon-missing' | 'lexicon-damaged'> {}

const classIndex = z
  .number()
  .int()
  .min(0)
  .max(CLASS_COUNT - 1);

const lexiconSchema = z.object({
  format: z.literal('sagasu-concepts-1'),
  sources: z.record(z.string(), z.string()),
  classes: z
    .array(
      z.object({
        synset: z.string().regex(/^n\d{8}$/),
        names: z.array(z.string().min(1)).min(1),
        path: z.array(z.number().int().min(0)),
      }),
    )
    .length(CLASS_COUNT),
  synsets: z.array(
    z.object({
      id: z.string().regex(/^n\d{8}$/),
      names: z.array(z.string().min(1)).min(1),
      classes: z.array(classIndex).min(1),
    }),
  ),
  lemmas: z.record(z.string(), z.array(z.tuple([z.number().int().min(0), z.number().gt(0).max(1)])).min(1)),
  exceptions: z.record(z.string(), z.string()),
  ja: z.record(z.string(), z.array(z.string()).min(1)),
});

export type LexiconFile = z.infer<typeof lexiconSchema>;

interface ConceptMatch {
  /** The query's own word or phrase ("polar bears", 「灯台」). */
  term: string;
  /** The WordNet 3.0 noun synset it was read as ("n02134084"). */
  synset: string;
  /** The lexicon lemma that matched ("polar bear"). */
  lemma: string;
  /** The ImageNet classes under the synset (or the class above it), indices 0..999. */
  classes: number[];
  /**
   * How far the term is this concept, in (0, 1]: the sense's share of the word's uses (WordNet's tag counts),
   * scaled down when few of the synset's hyponyms are ImageNet classes. A term's matches sum to at most 1.
   */
  weight: number;
}

export interface ConceptQuery {
  matches: ConceptMatch[];
  /** Content words (stop words aside) that reach no concept. */
  unknown: string[];
}

interface ClassNames {
  synset: string;
  /** Common names, first the ImageNet name ("ice bear", "polar bear"). */
  names: string[];
  /** Salient hypernyms, nearest first, each as its names: [["marsupial", …], ["mammal"], …, ["animal", …]]. */
  hypernyms: string[][];
}

/** Longest phrase tried, in words ("soft-coated wheaten terrier" is four). */
const MAX_PHRASE = 4;

/** WordNet's morphy rules for noun plurals, tried after noun.exc. */
const SUFFIXES: Array<[string, string]> = [
  ['ses', 's'],
  ['xes', 'x'],
  ['zes', 'z'],
  ['ches', 'ch'],
  ['shes', 'sh'],
  ['men', 'man'],
  ['ies', 'y'],
  ['s', ''],
];

/** A probability floor: the classifier's quantized output rounds small values to 0, and log(0) ranks nothing. */
export const PROBABILITY_FLOOR = 1e-3;

/**
 * The words and phrases of a query that name ImageNet concepts, read through WordNet 3.0: "a dog" reaches the
 * 118 dog breeds, "polar bears" the ice bear, 「灯台」 the beacon.
 */
export class ConceptLexicon {
  private constructor(
    private readonly file: LexiconFile,
    readonly path: string,
  ) {}

  /** Reads and checks the lexicon; a missing or damaged file is a ConceptError naming it. */
  static async load(file: string = CONCEPT_LEXICON_FILE): Promise<ConceptLexicon> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (cause) {
      const missing = (cause as NodeJS.ErrnoException).code === 'ENOENT';
      throw new ConceptError(
        missing ? 'lexicon-missing' : 'lexicon-damaged',
        file,
        missing
          ? 'the concept lexicon is not there (it is committed under models/concepts; `npm run concepts:build` rebuilds it)'
          : `cannot read the concept lexicon: ${(cause as Error).message}`,
        { cause },
      );
    }
    return ConceptLexicon.parse(text, file);
  }

  /** The lexicon from its JSON text; `file` names it in errors. */
  static parse(text: string, file: string): ConceptLexicon {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (cause) {
      throw new ConceptError('lexicon-damaged', file, `is not valid JSON (${(cause as Error).message})`, {
        cause,
      });
    }
    const parsed = lexiconSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ConceptError(
        'lexicon-damaged',
        file,
        `is not a concept lexicon: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'}`,
      );
    }
    const data = parsed.data;
    const n = data.synsets.length;
    for (const [lemma, senses] of Object.entries(data.lemmas))
      for (const [s] of senses)
        if (s >= n)
          throw new ConceptError('lexicon-damaged', file, `lemma "${lemma}" points at synset ${s} of ${n}`);
    data.classes.forEach((c, i) => {
      for (const s of c.path)
        if (s >= n)
          throw new ConceptError('lexicon-damaged', file, `class ${i} (${c.synset}) points at synset ${s}`);
    });
    return new ConceptLexicon(data, file);
  }

  /** The words of a sentence as concepts. Japanese is tokenized with the app's tokenizer. */
  async query(sentence: string, lang: 'en' | 'ja'): Promise<ConceptQuery> {
    if (lang === 'ja') return this.queryJapanese(await tokenizeJapanese(sentence));
    return this.queryEnglish(words(sentence));
  }

  /** The lexicon lemma of a word or phrase: itself, its last word through noun.exc, then the plural rules. */
  private lemmaOf(phrase: string[]): string | undefined {
    const head = phrase.slice(0, -1);
    const last = phrase[phrase.length - 1] as string;
    const candidates = [last];
    const exc = this.file.exceptions[last];
    if (exc) candidates.push(exc);
    for (const [suffix, replacement] of SUFFIXES)
      if (last.length > suffix.length + 1 && last.endsWith(suffix))
        candidates.push(last.slice(0, -suffix.length) + replacement);
    return candidates.map((c) => [...head, c].join(' ')).find((key) => this.file.lemmas[key]);
  }

  private matchesOf(term: string, lemma: string): ConceptMatch[] {
    return (this.file.lemmas[lemma] ?? []).map(([s, weight]) => {
      const synset = this.file.synsets[s] as LexiconFile['synsets'][number];
      return { term, synset: synset.id, lemma, classes: synset.classes, weight };
    });
  }

  private queryEnglish(tokens: string[]): ConceptQuery {
    const matches: ConceptMatch[] = [];
    const unknown: string[] = [];
    for (let i = 0; i < tokens.length; ) {
      let taken = 0;
      for (let n = Math.min(MAX_PHRASE, tokens.length - i); n >= 1 && taken === 0; n--) {
        const phrase = tokens.slice(i, i + n);
        // A lone stop word is never a concept ("a" is also vitamin A and the ampere).
        if (n === 1 && isStopWord(phrase[0] as string)) break;
        const lemma = this.lemmaOf(phrase);
        if (lemma) {
          matches.push(...this.matchesOf(phrase.join(' '), lemma));
          taken = n;
        }
      }
      if (taken === 0) {
        const w = tokens[i] as string;
        if (!isStopWord(w) && !unknown.includes(w)) unknown.push(w);
        taken = 1;
      }
      i += taken;
    }
    return { matches, unknown };
  }

  private queryJapanese(tokens: string[]): ConceptQuery {
    const matches: ConceptMatch[] = [];
    const unknown: string[] = [];
    for (let i = 0; i < tokens.length; ) {
      let taken = 0;
      // Compounds the analyzer splits (ホッキョク + グマ) are looked up joined, longest first.
      for (let n = Math.min(MAX_PHRASE, tokens.length - i); n >= 1 && taken === 0; n--) {
        const term = tokens.slice(i, i + n).join('');
        const english = this.file.ja[term];
        if (english) {
          for (const lemma of english) {
            const ms = this.matchesOf(term, lemma);
            // Several English words for one Japanese word share its weight.
            for (const m of ms) matches.push({ ...m, weight: m.weight / english.length });
          }
          taken = n;
        } else if (n === 1 && /^[a-z]/.test(term)) {
          const lemma = this.lemmaOf([term]);
          if (lemma) {
            matches.push(...this.matchesOf(term, lemma));
            taken = 1;
          }
        }
      }
      if (taken === 0) {
        const w = tokens[i] as string;
        // Particles and endings (が, を, いる) are written in hiragana; a content word has kanji, katakana or Latin.
        if (/[\p{Script=Han}\p{Script=Katakana}a-z]/u.test(w) && !isStopWord(w) && !unknown.includes(w))
          unknown.push(w);
        taken = 1;
      }
      i += taken;
    }
    return { matches, unknown };
  }

  /** A class's names and its salient WordNet hypernyms, for tags ("koala" -> marsupial, mammal, animal). */
  classNames(classIndex: number): ClassNames {
    const c = this.file.classes[classIndex];
    if (!c) throw new RangeError(`class index ${classIndex} is outside 0..${CLASS_COUNT - 1}`);
    return {
      synset: c.synset,
      names: c.names,
      hypernyms: c.path.map((s) => (this.file.synsets[s] as LexiconFile['synsets'][number]).names),
    };
  }

  /**
   * A class and its salient hypernyms as tags, nearest first: the class's names (the first, and the second when
   * it is another word: "ice bear", "polar bear"), then each hypernym's first name, each with the classes under
   * it (a hypernym tag's confidence is their probability mass) and its Lightroom-style hierarchy.
   */
  classTags(classIndex: number): Array<{ text: string; classes: number[]; hierarchy: string }> {
    const c = this.file.classes[classIndex];
    if (!c) throw new RangeError(`class index ${classIndex} is outside 0..${CLASS_COUNT - 1}`);
    const chain = [
      { names: c.names, classes: [classIndex] },
      ...c.path.map((s) => this.file.synsets[s] as LexiconFile['synsets'][number]),
    ];
    const above = (k: number) =>
      chain
        .slice(k + 1)
        .map((l) => clean(l.names[0] as string))
        .reverse();
    return chain.flatMap((link, k) =>
      (k === 0 ? tagNames(link.names) : [link.names[0] as string]).map((text) => ({
        text,
        classes: link.classes,
        hierarchy: [...above(k), clean(text)].join('|'),
      })),
    );
  }

  /**
   * The hierarchy ("animal|mammal|marsupial|koala") of a tag that names a class or one of the hypernyms
   * above a class, as the tagger wrote it; undefined for any other word.
   */
  hierarchy(tag: string): string | undefined {
    if (!this.hierarchies) {
      const map = new Map<string, string>();
      for (let i = 0; i < CLASS_COUNT; i++)
        for (const t of this.classTags(i)) if (!map.has(t.text)) map.set(t.text, t.hierarchy);
      this.hierarchies = map;
    }
    return this.hierarchies.get(tag);
  }

  private hierarchies: Map<string, string> | undefined;
}

/** Lightroom separates hierarchy levels with "|". */
const clean = (name: string) => name.replace(/\|/g, ' ');

/**
 * The names a class or hypernym is tagged with: the first, and the second when it is another word rather than
 * a variant of the first ("ice bear" and "polar bear", "beacon" and "lighthouse"; not "sport car").
 */
function tagNames(names: readonly string[]): string[] {
  const [first, second] = names as [string, string | undefined];
  if (!second || first.includes(second) || second.includes(first) || first.slice(0, 4) === second.slice(0, 4))
    return [first];
  return [first, second];
}

interface ConceptTerm {
  /** The query's word or phrase. */
  term: string;
  /** The lexicon lemmas it was read as. */
  lemmas: string[];
  /** The photo's probability mass on the term's classes (its senses mixed by weight), in [0, 1]. */
  mass: number;
  /** The term's weight in the mean (the sum of its matches' weights). */
  weight: number;
  /** log(max(mass, PROBABILITY_FLOOR)): the term's own score. */
  score: number;
}

/**
 * The query's concepts one by one on a photo ("why this match": which concepts the photo shows, and how much
 * each moves the concept score, whose value is the weighted mean of these scores).
 */
export function conceptTerms(query: ConceptQuery, probs: Float32Array): ConceptTerm[] {
  if (probs.length !== CLASS_COUNT)
    throw new RangeError(`probs has ${probs.length} values, expected ${CLASS_COUNT} (no background class)`);
  const terms = new Map<string, ConceptTerm>();
  for (const m of query.matches) {
    let mass = 0;
    for (const c of m.classes) mass += probs[c] as number;
    const t = terms.get(m.term) ?? { term: m.term, lemmas: [], mass: 0, weight: 0, score: 0 };
    if (!t.lemmas.includes(m.lemma)) t.lemmas.push(m.lemma);
    t.mass += m.weight * mass;
    t.weight += m.weight;
    terms.set(m.term, t);
  }
  return [...terms.values()].map((t) => {
    const mass = Math.min(1, t.mass / t.weight);
    return { ...t, mass, score: Math.log(Math.max(PROBABILITY_FLOOR, mass)) };
  });
}

/**
 * How much a photo shows the query's concepts, from its class probabilities (1000, imagenet_synsets order):
 * for each term, the log of the probability mass of its classes (a term read in several senses mixes them by
 * weight), averaged over the terms, each counted by its weight. In [log(PROBABILITY_FLOOR), 0]; NaN when the
 * query has no concept, so the caller can leave the concept score out.
 */
export function conceptScore(query: ConceptQuery, probs: Float32Array): number {
  let sum = 0;
  let weights = 0;
  for (const t of conceptTerms(query, probs)) {
    sum += t.weight * t.score;
    weights += t.weight;
  }
  return weights > 0 ? sum / weights : Number.NaN;
}
