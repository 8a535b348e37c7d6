import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import kuromoji from 'kuromoji';
import { words } from '../describe/index.ts';
import { sha256Hex } from '../files.ts';
import { kuromojiDictDir, normalizeJapanese } from '../text/index.ts';
import type { LexiconFile } from './lexicon.ts';

/**
 * Builds the concept lexicon (models/concepts/lexicon.json) from WordNet 3.0 (Debian `wordnet-base`), the
 * ImageNet class list (WordNet 3.0 synset ids in the classifier's order) and EDICT (Debian `edict`). Only what
 * the engine needs is kept: the synsets that reach an ImageNet class, the lemmas that name them, the plural
 * exceptions of those lemmas and the Japanese words whose English is one of them.
 */

export const WORDNET_DIR = '/usr/share/wordnet';
export const EDICT_FILE = '/usr/share/edict/edict';

/**
 * Senses below this weight are left out: a rare sense must not speak for a word. Except a class named by the
 * word (its synset's first lemma) when the word's commonest sense is the same kind of thing (WordNet's
 * lexicographer file): "palace" is first a stately mansion, an artifact like the class (its fourth sense,
 * 2 % by tag count), so it keeps the class at this weight; "mouse" is first a rodent, so the computer mouse
 * stays out.
 */
const MIN_WEIGHT = 0.1;

/**
 * A synset whose hyponyms are mostly outside ImageNet ("person": 3 classes among 10,297 hyponyms) says little
 * through the classifier; its weight is scaled by min(1, COVERAGE_GAIN * covered / hyponyms).
 */
const COVERAGE_GAIN = 10;

/**
 * Where WordNet puts a word beside the class that shows it rather than above it. ImageNet's class "cup"
 * (n07930864) is WordNet's punch cup, yet its photos are drinking cups, and the drinking cup synset (cup%1)
 * has no class under it. A beach, the sea and a lake are what the seashore, sandbar and lakeside classes
 * show, but they are their siblings (under "shore", "body of water"), not their hypernyms.
 */
const ALIASES: Record<string, string[]> = {
  cup: ['07930864', '03063599'],
  'coffee cup': ['07930864', '03063599'],
  teacup: ['07930864', '03063599'],
  beach: ['09428293', '09421951'],
  sea: ['09428293'],
  ocean: ['09428293'],
  lake: ['09332890'],
};

/** Top-level synsets too abstract to be a catalogue keyword (entity, object, whole, artifact, …). */
const ABSTRACT = new Set([
  '00001740', // entity
  '00001930', // physical entity
  '00002684', // object
  '00003553', // whole
  '00004258', // living thing
  '00004475', // organism
  '00021939', // artifact
  '03575240', // instrumentality
  '00020827', // matter
  '00019613', // substance
  '15046900', // solid
  '00002137', // abstraction
  '00007347', // causal agent
]);

interface Synset {
  words: string[];
  up: string[];
  down: string[];
  /** The lexicographer file ("06": noun.artifact, "05": noun.animal): what kind of thing it is. */
  lexFile: string;
}

interface Sources {
  dataNoun: string;
  indexNoun: string;
  nounExc: string;
  cntlist: string;
  synsets: string;
  edict?: string | undefined;
}

/** The lookup key of a lemma or a phrase: the query tokenizer's words, space-joined. */
function lemmaKey(text: string): string {
  return words(text.replace(/_/g, ' ')).join(' ');
}

function parseData(text: string): Map<string, Synset> {
  const data = new Map<string, Synset>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith(' ')) continue;
    const f = (line.split(' | ')[0] as string).split(' ');
    const wc = Number.parseInt(f[3] as string, 16);
    const ws: string[] = [];
    for (let i = 0; i < wc; i++) ws.push((f[4 + 2 * i] as string).replace(/\([a-z]+\)$/, ''));
    let p = 4 + 2 * wc;
    const pc = Number.parseInt(f[p] as string, 10);
    p++;
    const up: string[] = [];
    const down: string[] = [];
    for (let i = 0; i < pc; i++, p += 4) {
      const sym = f[p] as string;
      if (f[p + 2] !== 'n') continue;
      if (sym === '@' || sym === '@i') up.push(f[p + 1] as string);
      else if (sym === '~' || sym === '~i') down.push(f[p + 1] as string);
    }
    data.set(f[0] as string, { words: ws, up, down, lexFile: f[1] as string });
  }
  return data;
}

function parseIndex(text: string): Map<string, string[]> {
  const index = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith(' ')) continue;
    const f = line.trim().split(' ');
    const n = Number(f[2]);
    index.set(f[0] as string, f.slice(f.length - n));
  }
  return index;
}

/** Tag counts (SemCor) per "lemma#sense number", from cntlist.rev's noun lines. */
function parseCounts(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [key, sense, count] = line.split(' ');
    if (!key || !sense || !key.includes('%1:')) continue;
    counts.set(`${key.split('%')[0]}#${sense}`, Number(count));
  }
  return counts;
}

function closure(data: Map<string, Synset>, start: string, link: 'up' | 'down'): Set<string> {
  const seen = new Set<string>();
  const stack = [start];
  while (stack.length > 0) {
    const s = stack.pop() as string;
    if (seen.has(s)) continue;
    seen.add(s);
    stack.push(...(data.get(s)?.[link] ?? []));
  }
  return seen;
}

function addTo(map: Map<string, Set<number>>, key: string, value: number): void {
  const set = map.get(key);
  if (set) set.add(value);
  else map.set(key, new Set([value]));
}

const display = (w: string) => w.replace(/_/g, ' ');

function buildLexicon(src: Sources): LexiconFile {
  const data = parseData(src.dataNoun);
  const index = parseIndex(src.indexNoun);
  const counts = parseCounts(src.cntlist);
  const classes = src.synsets
    .trim()
    .split('\n')
    .map((l) => (l.split(' ')[0] as string).slice(1));
  if (classes.length !== 1000) throw new Error(`expected 1000 ImageNet synsets, got ${classes.length}`);
  const isClass = new Set(classes);

  // Which classes each synset reaches: every hypernym of a class holds it, and every hyponym of a class
  // (a ristretto is an espresso to the classifier) maps to that class.
  const under = new Map<string, Set<number>>();
  classes.forEach((c, i) => {
    if (!data.has(c)) throw new Error(`ImageNet synset n${c} is not a WordNet 3.0 noun`);
    for (const s of closure(data, c, 'up')) addTo(under, s, i);
  });
  const below = new Map<string, Set<number>>();
  classes.forEach((c, i) => {
    for (const s of closure(data, c, 'down')) {
      if (!under.has(s)) addTo(below, s, i);
    }
  });
  const reach = (s: string) => under.get(s) ?? below.get(s);

  const reliability = new Map<string, number>();
  const reliable = (s: string): number => {
    let r = reliability.get(s);
    if (r === undefined) {
      if (below.has(s)) r = 1;
      else {
        const hyponyms = closure(data, s, 'down');
        let covered = 0;
        for (const h of hyponyms) if (reach(h)) covered++;
        r = Math.min(1, (COVERAGE_GAIN * covered) / hyponyms.size);
      }
      reliability.set(s, r);
    }
    return r;
  };

  const synsetIds: string[] = [];
  const synsetAt = new Map<string, number>();
  const ref = (s: string): number => {
    let k = synsetAt.get(s);
    if (k === undefined) {
      k = synsetIds.length;
      synsetIds.push(s);
      synsetAt.set(s, k);
    }
    return k;
  };

  // Each lemma's senses in WordNet order; a sense's share of the word is its tag count plus a prior that
  // falls with the sense rank, so untagged senses keep WordNet's order. Proper-noun senses without a class
  // ("Crane", the poet) are left out of the word's senses: a lower-case query rarely means them.
  const lemmas: Record<string, Array<[number, number]>> = {};
  for (const [lemma, senses] of index) {
    const kept: Array<{ s: string; raw: number }> = [];
    senses.forEach((s, k) => {
      const form = data.get(s)?.words.find((w) => w.toLowerCase() === lemma);
      if (!reach(s) && form !== undefined && form !== form.toLowerCase()) return;
      kept.push({ s, raw: (counts.get(`${lemma}#${k + 1}`) ?? 0) + 0.5 / (kept.length + 1) });
    });
    const total = kept.reduce((a, b) => a + b.raw, 0);
    const commonest = kept.reduce<{ s: string; raw: number } | undefined>(
      (a, b) => (a && a.raw >= b.raw ? a : b),
      undefined,
    );
    const namesClass = (s: string) =>
      isClass.has(s) &&
      data.get(s)?.words[0]?.toLowerCase() === lemma &&
      data.get(s)?.lexFile === (commonest && data.get(commonest.s)?.lexFile);
    const matches: Array<[number, number]> = [];
    for (const { s, raw } of kept) {
      if (!reach(s)) continue;
      const weight = namesClass(s) ? Math.max(MIN_WEIGHT, raw / total) : (raw / total) * reliable(s);
      if (weight >= MIN_WEIGHT) matches.push([ref(s), Math.round(weight * 1000) / 1000]);
    }
    const key = lemmaKey(lemma);
    if (matches.length > 0 && key) lemmas[key] = matches;
  }
  for (const [lemma, ids] of Object.entries(ALIASES))
    lemmas[lemma] = ids.map((s) => [ref(s), Math.round(1000 / ids.length) / 1000]);

  // noun.exc: irregular plurals whose base form is a lexicon lemma.
  const exceptions: Record<string, string> = {};
  for (const line of src.nounExc.split('\n')) {
    const [form, ...bases] = line.trim().split(' ');
    if (!form) continue;
    const base = bases.map(lemmaKey).find((b) => lemmas[b]);
    const key = lemmaKey(form);
    if (base && key && !lemmas[key]) exceptions[key] = base;
  }

  // Each class: its names (WordNet's lemmas, scientific names left out) and its chain of salient hypernyms,
  // nearest first: "koala" -> marsupial, mammal, vertebrate, animal.
  const tagCount = (s: string): number => {
    let n = 0;
    for (const w of data.get(s)?.words ?? []) {
      const l = w.toLowerCase();
      const k = (index.get(l) ?? []).indexOf(s);
      if (k >= 0) n += counts.get(`${l}#${k + 1}`) ?? 0;
    }
    return n;
  };
  const classEntries = classes.map((c, i) => {
    const path: number[] = [];
    let size = 1;
    let s = data.get(c)?.up[0];
    while (s && !ABSTRACT.has(s)) {
      const n = (under.get(s) as Set<number>).size;
      const tags = tagCount(s);
      // Keep a hypernym that is a common word (tagged in SemCor), or the class's nearest group when it
      // gathers clearly more classes; of a run with the same classes only the lowest ("marsupial", not
      // "metatherian"), and never a rare word above the first kept ("placental", "even-toed ungulate").
      if (tags >= 5 || (n > size && (tags >= 1 || (path.length === 0 && n >= 2 * size)))) {
        path.push(ref(s));
        size = n;
      }
      s = data.get(s)?.up[0];
    }
    return { synset: `n${c}`, path, index: i };
  });

  const synsets = synsetIds.map((s) => {
    const names = (data.get(s) as Synset).words;
    // Lower-case lemmas are the common names; capitalized ones are scientific or proper names, kept only
    // when the synset has nothing else ("Granny Smith").
    const common = names.filter((w) => w === w.toLowerCase());
    return {
      id: `n${s}`,
      names: (common.length > 0 ? common : names).map(display),
      classes: [...(reach(s) as Set<number>)].sort((a, b) => a - b),
    };
  });
  const classNames = classes.map((c) => {
    const names = (data.get(c) as Synset).words;
    const common = names.filter((w) => w === w.toLowerCase());
    return (common.length > 0 ? common : names).map(display);
  });

  return {
    format: 'sagasu-concepts-1',
    sources: {
      wordnet:
        'WordNet 3.0 (Princeton University), Debian wordnet-base: data.noun, index.noun, noun.exc, cntlist.rev',
      classes: 'ImageNet 2012 classes as WordNet 3.0 noun synsets (imagenet_synsets.txt)',
      japanese: src.edict ? 'EDICT (EDRDG, CC-BY-SA 3.0), Debian edict' : 'none',
    },
    classes: classEntries.map((e, i) => ({
      synset: e.synset,
      names: classNames[i] as string[],
      path: e.path,
    })),
    synsets,
    lemmas,
    exceptions,
    ja: src.edict ? japaneseEntries(src.edict, lemmas) : {},
  };
}

const TAG = /^\s*\(([^()]*)\)\s*/;

/** EDICT's part-of-speech codes (n, n-suf, adj-no, v5r, vs-i, ctr, …), as opposed to its other tags (uk, P). */
const POS_CODE =
  /^(n|n-\w+|adj-\w+|adv|adv-to|aux|aux-\w+|conj|cop|cop-da|ctr|exp|int|pn|pref|prt|suf|unc|v[1-5kinrstz][\w-]*)$/;

/**
 * The English of a gloss without its tags and parenthetical notes: "(n) (1) dog (Canis (lupus) f.)" -> "dog";
 * with the sense number and the part-of-speech codes the gloss opens with, if any.
 */
function glossText(gloss: string): { text: string; sense: number | undefined; pos: string[] | undefined } {
  let g = gloss;
  let sense: number | undefined;
  let pos: string[] | undefined;
  for (let m = TAG.exec(g); m; m = TAG.exec(g)) {
    const tag = m[1] as string;
    const codes = tag.split(',');
    if (/^\d+$/.test(tag)) sense = Number(tag);
    else if (codes.every((c) => POS_CODE.test(c))) pos = codes;
    g = g.slice(m[0].length);
  }
  let prev = '';
  while (prev !== g) {
    prev = g;
    g = g.replace(/\([^()]*\)/g, ' ');
  }
  return { text: g.replace(/^(the|a|an) /i, '').trim(), sense, pos };
}

const KATAKANA = /^[\p{Script=Katakana}ー・]+$/u;

/**
 * Japanese word -> English lemmas, from EDICT lines "漢字 [かな] /(n) (1) gloss/gloss/(2) …/(P)/". A word
 * takes the lemmas of the first sense that names a lexicon concept; common entries (P) come first when a
 * word has several (城 [しろ] castle before 城 [き] fortress). A reading is a key of its own when it is
 * katakana (loanwords: コアラ) or the entry is usually written in kana (uk).
 */
function japaneseEntries(text: string, lemmas: Record<string, unknown>): Record<string, string[]> {
  const found = new Map<string, { common: boolean; order: number; lemmas: string[] }>();
  const lines = text.split('\n');
  lines.forEach((line, order) => {
    const m = /^(\S+)(?: \[([^\]]+)\])? \/(.*)\/$/.exec(line.trim());
    if (!m) return;
    const glosses = (m[3] as string).split('/');
    const common = glosses.includes('(P)');
    const usuallyKana = /\(uk\)/.test(m[3] as string);
    const bySense = new Map<number, string[]>();
    let sense = 1;
    // A sense without its own part of speech has the one before it ("(vs-i) (4) to wear" is a verb).
    let noun = true;
    for (const g of glosses) {
      if (g === '(P)' || g.startsWith('EntL')) continue;
      const parsed = glossText(g);
      if (parsed.sense !== undefined) sense = parsed.sense;
      if (parsed.pos) noun = parsed.pos.some((c) => c === 'n' || c.startsWith('n-'));
      const key = lemmaKey(parsed.text);
      if (noun && key && lemmas[key]) {
        const list = bySense.get(sense) ?? [];
        if (!list.includes(key)) list.push(key);
        bySense.set(sense, list);
      }
    }
    const first = [...bySense.keys()].sort((a, b) => a - b)[0];
    if (first === undefined) return;
    const english = bySense.get(first) as string[];
    const keys = (m[1] as string).split(';');
    if (m[2]) for (const r of (m[2] as string).split(';')) if (KATAKANA.test(r) || usuallyKana) keys.push(r);
    for (const raw of keys) {
      const k = raw.replace(/\(.*\)$/, '').normalize('NFKC');
      const had = found.get(k);
      if (!had || (common && !had.common)) found.set(k, { common, order, lemmas: english });
    }
  });
  const out: Record<string, string[]> = {};
  for (const k of [...found.keys()].sort()) out[k] = (found.get(k) as { lemmas: string[] }).lemmas;
  return out;
}

/** Reads the Debian files (and the class list) and builds the lexicon. */
export async function buildLexiconFromFiles(
  synsetsFile: string,
  options: { wordnet?: string; edict?: string | null } = {},
): Promise<LexiconFile> {
  const edictFile = options.edict === undefined ? EDICT_FILE : options.edict;
  const inputs = sourceFiles(synsetsFile, options.wordnet ?? WORDNET_DIR, edictFile);
  const bytes = await Promise.all(Object.values(inputs).map((f) => readFile(f)));
  const [dataNoun, indexNoun, nounExc, cntlist] = bytes.slice(0, 4).map((b) => b.toString('latin1')) as [
    string,
    string,
    string,
    string,
  ];
  const synsets = (bytes[4] as Buffer).toString('utf8');
  const edict = bytes[5] ? new TextDecoder('euc-jp').decode(bytes[5]) : undefined;
  const lexicon = buildLexicon({ dataNoun, indexNoun, nounExc, cntlist, synsets, edict });
  if (edict) lexicon.ja = await withoutFunctionWords(lexicon.ja);
  // Which exact files it was built from: another WordNet or EDICT release gives another lexicon.
  Object.keys(inputs).forEach((name, k) => {
    lexicon.sources[`sha256 ${name}`] = sha256Hex(bytes[k] as Buffer);
  });
  return lexicon;
}

/** The files the lexicon is built from, by name. */
export function sourceFiles(
  synsetsFile: string,
  wordnet: string = WORDNET_DIR,
  edict: string | null = EDICT_FILE,
): Record<string, string> {
  return {
    'data.noun': join(wordnet, 'data.noun'),
    'index.noun': join(wordnet, 'index.noun'),
    'noun.exc': join(wordnet, 'noun.exc'),
    'cntlist.rev': join(wordnet, 'cntlist.rev'),
    'imagenet_synsets.txt': synsetsFile,
    ...(edict ? { edict } : {}),
  };
}

/**
 * A kana-only word that the app's analyzer reads as one word other than a common noun is that word, not the
 * rare noun EDICT also spells so: する (to do, not 摺る "wear"), ため, あり (to be, not 蟻 "ant"). Kana words the
 * analyzer splits stay: the query joins the pieces again (あか + ぎつね -> あかぎつね, red fox).
 */
async function withoutFunctionWords(ja: Record<string, string[]>): Promise<Record<string, string[]>> {
  const analyzer = await new Promise<kuromoji.Tokenizer<kuromoji.IpadicFeatures>>((resolve, reject) =>
    kuromoji
      .builder({ dicPath: kuromojiDictDir() })
      .build((error, a) => (error ? reject(error) : resolve(a))),
  );
  const out: Record<string, string[]> = {};
  for (const [key, english] of Object.entries(ja)) {
    if (/^[\p{Script=Hiragana}ー]+$/u.test(key)) {
      const tokens = analyzer.tokenize(normalizeJapanese(key));
      const [only] = tokens;
      // One kana alone (す, こ) is an ending or a particle in a query far more often than a noun.
      if (key.length === 1) continue;
      if (tokens.length === 1 && only && !(only.pos === '名詞' && only.pos_detail_1 === '一般')) continue;
    }
    out[key] = english;
  }
  return out;
}
