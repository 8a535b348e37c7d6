/**
 * The concept lexicon: query words and phrases -> WordNet 3.0 synsets -> the ImageNet classes under them, read
 * from the committed models/concepts/lexicon.json and checked against WordNet itself (Debian wordnet-base).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildLexiconFromFiles,
  EDICT_FILE,
  sourceFiles,
  WORDNET_DIR,
} from '../src-main/engine/concepts/build.ts';
import {
  CLASS_COUNT,
  CONCEPT_LEXICON_FILE,
  ConceptError,
  ConceptLexicon,
  conceptScore,
  PROBABILITY_FLOOR,
} from '../src-main/engine/concepts/index.ts';
import { shared } from './helpers/shared.ts';

const synsetsFile = shared ? join(shared, 'models', 'imagenet_synsets.txt') : '';
const hasWordnet = existsSync(join(WORDNET_DIR, 'data.noun'));
const wordnetNote = hasWordnet
  ? ''
  : ' [skipped: WordNet 3.0 is not installed (apt-get install wordnet-base)]';
const committed = JSON.parse(readFileSync(CONCEPT_LEXICON_FILE, 'utf8')) as {
  sources: Record<string, string>;
  classes: Array<{ synset: string }>;
};
/** The installed source files that differ from the ones the committed lexicon was built from. */
function changedSources(): string[] {
  return Object.entries(sourceFiles(synsetsFile)).flatMap(([name, file]) =>
    createHash('sha256').update(readFileSync(file)).digest('hex') === committed.sources[`sha256 ${name}`]
      ? []
      : [name],
  );
}
const rebuildNote =
  wordnetNote ||
  (existsSync(EDICT_FILE) ? '' : ' [skipped: EDICT is not installed (apt-get install edict)]') ||
  (shared ? '' : ' [skipped: ../shared is absent; imagenet_synsets.txt lives there]') ||
  (changedSources().length > 0
    ? ` [skipped: the installed ${changedSources().join(', ')} differ from the release the lexicon was built from]`
    : '');

/** The ImageNet class list, read from the lexicon itself (n-offset per class index). */
const classSynsets = committed.classes.map((c) => c.synset.slice(1));
const classOf = (offset: string) => classSynsets.indexOf(offset);

/** WordNet's own hyponym closure (hyponyms and instances) of a synset, straight from data.noun. */
let hyponymLinks: Map<string, string[]> | undefined;
function wordnetHyponyms(offset: string): Set<string> {
  const down = hyponymLinks ?? new Map<string, string[]>();
  if (!hyponymLinks)
    for (const line of readFileSync(join(WORDNET_DIR, 'data.noun'), 'latin1').split('\n')) {
      if (!line || line.startsWith(' ')) continue;
      down.set(
        line.slice(0, 8),
        [...(line.split(' | ')[0] as string).matchAll(/ ~i? (\d{8}) n /g)].map((m) => m[1] as string),
      );
    }
  hyponymLinks = down;
  const seen = new Set<string>();
  const stack = [offset];
  while (stack.length) {
    const s = stack.pop() as string;
    if (seen.has(s)) continue;
    seen.add(s);
    stack.push(...(down.get(s) ?? []));
  }
  return seen;
}

let lexicon: ConceptLexicon;
beforeAll(async () => {
  lexicon = await ConceptLexicon.load();
});

const classesOf = async (q: string) => {
  const r = await lexicon.query(q, 'en');
  return [...new Set(r.matches.flatMap((m) => m.classes))].sort((a, b) => a - b);
};

describe('English queries reach ImageNet classes through WordNet', () => {
  it('"dog" is the 118 dog classes, exactly the classes under n02084071 in WordNet', async () => {
    const r = await lexicon.query('a dog', 'en');
    expect(r.matches.map((m) => [m.term, m.lemma, m.synset])).toEqual([['dog', 'dog', 'n02084071']]);
    expect(r.matches[0]?.classes).toHaveLength(118);
    if (hasWordnet) {
      const hyponyms = wordnetHyponyms('02084071');
      const expected = classSynsets.flatMap((s, i) => (hyponyms.has(s) ? [i] : []));
      expect(r.matches[0]?.classes).toEqual(expected);
    }
  });

  it.skipIf(!hasWordnet)(
    `bird, fruit, building and musical instrument match WordNet${wordnetNote}`,
    async () => {
      for (const [q, offset] of [
        ['bird', '01503061'],
        ['fruit', '13134947'],
        ['building', '02913152'],
        ['musical instrument', '03800933'],
      ] as const) {
        const hyponyms = wordnetHyponyms(offset);
        const expected = classSynsets.flatMap((s, i) => (hyponyms.has(s) ? [i] : []));
        expect(expected.length, q).toBeGreaterThan(5);
        expect(await classesOf(q), q).toEqual(expected);
      }
    },
  );

  it('plurals: the usual rules and noun.exc', async () => {
    expect(await classesOf('dogs')).toEqual(await classesOf('dog'));
    expect(await classesOf('churches')).toEqual([classOf('03028079')]);
    expect(await classesOf('foxes')).toEqual(await classesOf('fox'));
    expect((await classesOf('foxes')).length).toBeGreaterThan(1);
    // "geese" is in noun.exc; no suffix rule turns it into "goose".
    expect(await classesOf('geese')).toEqual([classOf('01855672')]);
  });

  it('multi-word lemmas are read as one concept, longest first, plural on the last word', async () => {
    const r = await lexicon.query('two polar bears and a red panda', 'en');
    expect(r.matches.map((m) => [m.term, m.lemma])).toEqual([
      ['polar bears', 'polar bear'],
      ['red panda', 'red panda'],
    ]);
    expect(r.matches.map((m) => m.classes)).toEqual([[classOf('02134084')], [classOf('02509815')]]);
    expect(r.unknown).toEqual([]);
    // "coffee cup" (no class under WordNet's coffee_cup) reaches the classes whose photos show cups.
    expect(await classesOf('a coffee cup')).toEqual(
      [classOf('07930864'), classOf('03063599')].sort((a, b) => a - b),
    );
    expect((await classesOf('musical instruments')).length).toBeGreaterThan(20);
    // "the sea" is WordNet's sibling of the seashore class, not its hypernym; it reaches it all the same.
    expect(await classesOf('a lighthouse by the sea')).toEqual(
      [classOf('02814860'), classOf('09428293')].sort((a, b) => a - b),
    );
  });

  it('a word with no concept is listed as unknown, and its query scores NaN (not applicable)', async () => {
    const r = await lexicon.query('happiness and laughter', 'en');
    expect(r.matches).toEqual([]);
    expect(r.unknown).toEqual(['happiness', 'laughter']);
    expect(conceptScore(r, new Float32Array(CLASS_COUNT).fill(1 / CLASS_COUNT))).toBeNaN();
    const window = await lexicon.query('a dog looking out of a window', 'en');
    expect(window.matches.map((m) => m.lemma)).toEqual(['dog']);
    expect(window.unknown).toEqual(['window']);
  });

  it('a rare sense does not speak for a word', async () => {
    // mouse%4 (computer mouse) and bank%8 (piggy bank) are ImageNet classes, but untagged senses behind
    // the rodent and the river bank.
    expect(await classesOf('mouse')).toEqual([]);
    expect(await classesOf('bank')).toEqual([]);
    // Unless the word names the class and is first the same kind of thing: "palace" is first a stately
    // mansion (an artifact, no class); the classifier's palace is its fourth sense.
    expect(await classesOf('palace')).toEqual([classOf('03877845')]);
    // "person" has 3 classes (groom, scuba diver, ballplayer) among 10,297 hyponyms: too few to judge by.
    expect(await classesOf('person')).toEqual([]);
    // Both senses of "crane" are classes; the weights split the word between them.
    const crane = await lexicon.query('crane', 'en');
    expect(crane.matches.map((m) => m.synset).sort()).toEqual(['n02012849', 'n03126707']);
    expect(crane.matches.reduce((a, m) => a + m.weight, 0)).toBeCloseTo(1, 2);
  });
});

describe('Japanese queries reach the same concepts (EDICT, the app tokenizer)', () => {
  it('灯台 is the lighthouse, コアラ the koala, 城 the castle', async () => {
    for (const [q, offset] of [
      ['灯台', '02814860'],
      ['コアラ', '01882714'],
      ['城', '02980441'],
      ['ホッキョクグマ', '02134084'],
    ] as const) {
      const r = await lexicon.query(q, 'ja');
      expect(
        r.matches.map((m) => m.classes),
        q,
      ).toEqual([[classOf(offset)]]);
    }
    const sentence = await lexicon.query('犬が走っている', 'ja');
    expect(sentence.matches.map((m) => [m.term, m.lemma])).toEqual([['犬', 'dog']]);
    expect(sentence.unknown).toEqual(['走る']);
    // する is "to do" here, never EDICT's kana spelling of 摺る ("to wear"), nor あり 蟻 (ant).
    const verbs = await lexicon.query('犬が散歩をするのがあり', 'ja');
    expect(verbs.matches.map((m) => m.lemma)).toEqual(['dog']);
  });
});

describe('conceptScore', () => {
  it('ranks a photo whose probability mass is on the concept above one whose mass is elsewhere', async () => {
    const q = await lexicon.query('a koala', 'en');
    const koala = classOf('01882714');
    const onKoala = new Float32Array(CLASS_COUNT);
    onKoala[koala] = 0.9;
    onKoala[0] = 0.1;
    const elsewhere = new Float32Array(CLASS_COUNT);
    elsewhere[0] = 1;
    expect(conceptScore(q, onKoala)).toBeCloseTo(Math.log(0.9), 5);
    expect(conceptScore(q, elsewhere)).toBeCloseTo(Math.log(PROBABILITY_FLOOR), 5);
    // Two concepts: the mean of their log masses.
    const two = await lexicon.query('a koala and a dog', 'en');
    const both = new Float32Array(CLASS_COUNT);
    both[koala] = 0.5;
    both[classOf('02085620')] = 0.5; // Chihuahua
    const s = conceptScore(two, both);
    expect(s).toBeGreaterThan(conceptScore(two, onKoala));
    expect(s).toBeLessThan(0);
  });

  it('refuses a probability vector of the wrong length (the 1001 outputs with background)', () => {
    expect(() => conceptScore({ matches: [], unknown: [] }, new Float32Array(1001))).toThrow(/1000/);
  });
});

describe('class names and hypernyms for tags', () => {
  it('koala -> marsupial -> mammal -> animal, each a WordNet hypernym', () => {
    const c = lexicon.classNames(classOf('01882714'));
    expect(c.synset).toBe('n01882714');
    expect(c.names[0]).toBe('koala');
    const chain = c.hypernyms.map((h) => h[0]);
    expect(chain.indexOf('marsupial')).toBeGreaterThanOrEqual(0);
    expect(chain.indexOf('marsupial')).toBeLessThan(chain.indexOf('mammal'));
    expect(chain.indexOf('mammal')).toBeLessThan(chain.indexOf('animal'));
    expect(chain.at(-1)).toBe('animal');
    expect(() => lexicon.classNames(CLASS_COUNT)).toThrow(RangeError);
  });
});

describe('a damaged lexicon file is a clear error naming it', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sagasu-concepts-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('truncated, wrong shape, dangling reference, missing', async () => {
    const good = await readFile(CONCEPT_LEXICON_FILE, 'utf8');
    const truncated = join(dir, 'truncated.json');
    await writeFile(truncated, good.slice(0, 5000));
    await expect(ConceptLexicon.load(truncated)).rejects.toMatchObject({
      code: 'lexicon-damaged',
      file: truncated,
      message: expect.stringMatching(/truncated\.json: is not valid JSON/),
    });

    const json = JSON.parse(good);
    json.classes.pop();
    const short = join(dir, 'short.json');
    await writeFile(short, JSON.stringify(json));
    const err = await ConceptLexicon.load(short).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConceptError);
    expect((err as ConceptError).message).toMatch(/short\.json: is not a concept lexicon: classes/);

    const dangling = JSON.parse(good);
    dangling.lemmas.dog = [[dangling.synsets.length + 5, 1]];
    const bad = join(dir, 'dangling.json');
    await writeFile(bad, JSON.stringify(dangling));
    await expect(ConceptLexicon.load(bad)).rejects.toThrow(/dangling\.json: lemma "dog" points at synset/);

    await expect(ConceptLexicon.load(join(dir, 'absent.json'))).rejects.toMatchObject({
      code: 'lexicon-missing',
    });
  });
});

describe.skipIf(rebuildNote !== '')(
  `the committed lexicon is what WordNet and EDICT give${rebuildNote}`,
  () => {
    it('rebuilds byte for byte', { timeout: 180_000 }, async () => {
      const rebuilt = await buildLexiconFromFiles(synsetsFile);
      expect(`${JSON.stringify(rebuilt)}\n`).toBe(await readFile(CONCEPT_LEXICON_FILE, 'utf8'));
    });
  },
);
