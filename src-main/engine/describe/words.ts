/**
 * Caption text handling shared by the caption bank and the tagger: how a caption is cleaned for display and
 * for deduplication, and how its words become tag candidates (stop words out, simple lemmas).
 */

/** A caption as shown to a person: one line, single spaces, no space before punctuation, capitalized. */
export function cleanCaption(text: string): string {
  const one = text
    .normalize('NFC')
    .replace(/\s+/g, ' ')
    .replace(/ ([.,!?;:])/g, '$1')
    .replace(/([.!?])\1+$/, '$1')
    .trim();
  return one.charAt(0).toLocaleUpperCase('en') + one.slice(1);
}

/** Two captions with the same key say the same thing (case, spacing and punctuation aside). */
export function captionKey(text: string): string {
  return text
    .normalize('NFKC')
    .toLocaleLowerCase('en')
    .replace(/[^\p{L}\p{N}']+/gu, ' ')
    .trim();
}

/** Word tokens of a caption, lower case; a clitic 's is dropped ("dog's" -> "dog"). */
export function words(text: string): string[] {
  const out: string[] = [];
  for (const m of text
    .normalize('NFKC')
    .toLocaleLowerCase('en')
    .matchAll(/[\p{L}\p{N}]+(?:['’][\p{L}]+)*/gu)) {
    const w = m[0].replace(/['’]s$/u, '').replace(/['’]/gu, '');
    if (w) out.push(w);
  }
  return out;
}

// Function words, numbers, and the caption filler that says nothing a catalogue keyword should
// ("in front of", "next to", "is standing", "looks at", "wearing").
const STOP = new Set(
  `a an the and or but nor so yet if then than as at by for from in into onto on of off out over under up down
  to toward towards with within without about above across after against along among around before behind below
  beneath beside besides between beyond during except inside near next outside past since through throughout till
  until upon via while whilst is are was were be been being am do does did doing done have has had having
  i me my myself we us our ours you your yours he him his himself she her hers herself it its itself they them
  their theirs themselves this that these those who whom whose which what when where why how all any both each
  few more most other another some such no not only own same very just can will would should could may might
  must shall there here too also again once one two three four five six seven eight nine ten several many
  much lot lots something someone somebody anything anyone everything everyone nothing thing things
  front side top bottom middle back left right way other others kind sort type area part piece background
  foreground nearby
  look looks looking looked wear wears wearing wore worn stand stands standing stood get gets getting got
  go goes going went gone make makes making made take takes taking took let lets appear appears appearing
  seem seems seeming try tries trying while`
    .split(/\s+/)
    .filter(Boolean),
);

/** Irregular forms whose lemma the suffix rules cannot find. */
const IRREGULAR: Record<string, string> = {
  children: 'child',
  men: 'man',
  women: 'woman',
  feet: 'foot',
  teeth: 'tooth',
  mice: 'mouse',
  geese: 'goose',
  wolves: 'wolf',
  knives: 'knife',
  shelves: 'shelf',
  calves: 'calf',
  halves: 'half',
  ran: 'run',
  sat: 'sit',
  rode: 'ride',
  ridden: 'ride',
  swam: 'swim',
  ate: 'eat',
  eaten: 'eat',
  threw: 'throw',
  thrown: 'throw',
  caught: 'catch',
  held: 'hold',
  flew: 'fly',
  flown: 'fly',
  fell: 'fall',
  fallen: 'fall',
  lying: 'lie',
  lay: 'lie',
  dug: 'dig',
  hung: 'hang',
  drove: 'drive',
  driven: 'drive',
  slid: 'slide',
  sang: 'sing',
  sung: 'sing',
  swung: 'swing',
  spun: 'spin',
  led: 'lead',
  fed: 'feed',
  hit: 'hit',
  bit: 'bite',
  bitten: 'bite',
  blew: 'blow',
  blown: 'blow',
  dove: 'dive',
  kneeled: 'kneel',
  knelt: 'kneel',
  leapt: 'leap',
  built: 'build',
};

/** Words with a plural look that are their own lemma (or would turn into another word). */
const KEEP = new Set(
  `people police clothes pants shorts jeans trousers glasses sunglasses goggles trunks overalls stairs scissors
  binoculars news series species physics bus gas lens canvas chess grass dress boss glass class mass cross press
  kiss moss bus plus yes this his its ass bass walrus octopus cactus circus campus bonus virus tennis dennis
  iris axis bus christmas texas always perhaps across`
    .split(/\s+/)
    .filter(Boolean),
);

/**
 * The verbs that Flickr-style captions use in their -ing / -ed / -s forms ("running", "dressed", "jumps"). Only
 * these lose their suffix: "building", "clothing" or "wedding" stay nouns.
 */
const VERBS = new Set(
  `run walk jump play sit ride swim climb throw catch hold smile eat drink dance sing read write sleep lie fly
  fall carry push pull kick hit chase fetch bite dig race skate ski surf skateboard snowboard bike cycle paddle
  row fish hike splash spray wade dive roll slide swing hug kiss talk laugh cry wait watch perform pose sell shop
  cook paint work cross lean kneel crawl bend reach stretch balance wave point blow shoot hang lift drive park pet
  feed chew bark graze herd lead follow gather stroll jog sprint skip hop leap tumble flip spin twirl wrestle fight
  tackle score serve bat pitch toss soak fill pour prepare rest relax sunbathe tan dress cover hide jog march sail
  kayak canoe camp travel explore wander cheer celebrate drag tug grab touch kneel squat crouch lay rope race
  shovel sled sweep clean wash brush comb play swim hurdle dribble block dunk skateboard rollerblade golf bowl
  glide soar float hover hunt sniff lick pant stare attack approach enter exit leave arrive cling hang pedal`
    .split(/\s+/)
    .filter(Boolean),
);

function undouble(stem: string): string | undefined {
  const n = stem.length;
  return n >= 3 && stem[n - 1] === stem[n - 2] && !/[aeiouls]/.test(stem[n - 1] as string)
    ? stem.slice(0, -1)
    : undefined;
}

/** The first candidate that is one of the common verbs. */
function verb(candidates: Array<string | undefined>): string | undefined {
  return candidates.find((c) => c !== undefined && VERBS.has(c));
}

/**
 * A simple lemma: irregular forms, -ing / -ed / -s of the common verbs, regular noun plurals
 * ("dogs" -> "dog", "puppies" -> "puppy", "benches" -> "bench", "running" -> "run", "children" -> "child").
 * `known`, when given (the caption bank's words), must contain a noun plural's singular for it to be used,
 * so "shorts" or "glasses" stay as they are unless the bank also says "short" / "glass" as nouns do.
 */
export function lemma(word: string, known?: ReadonlySet<string>): string {
  const w = word.toLocaleLowerCase('en');
  const irregular = IRREGULAR[w];
  if (irregular) return irregular;
  if (KEEP.has(w) || VERBS.has(w)) return w;
  if (w.length > 4 && w.endsWith('ing')) {
    const stem = w.slice(0, -3);
    return verb([undouble(stem), stem, `${stem}e`, stem.endsWith('y') ? stem : undefined]) ?? w;
  }
  if (w.length > 3 && w.endsWith('ed')) {
    const stem = w.slice(0, -2);
    return (
      verb([
        undouble(stem),
        stem,
        w.slice(0, -1),
        stem.endsWith('i') ? `${stem.slice(0, -1)}y` : undefined,
      ]) ?? w
    );
  }
  if (w.length > 3 && w.endsWith('s') && !/(ss|us|is)$/.test(w)) {
    const candidates: string[] = [];
    if (w.endsWith('ies') && w.length > 4) candidates.push(`${w.slice(0, -3)}y`);
    if (w.endsWith('oes')) candidates.push(w.slice(0, -1));
    if (/(ch|sh|x|z|ss|o)es$/.test(w)) candidates.push(w.slice(0, -2));
    if (w.endsWith('ves')) candidates.push(`${w.slice(0, -3)}f`, `${w.slice(0, -3)}fe`);
    candidates.push(w.slice(0, -1));
    const asVerb = verb(candidates);
    if (asVerb) return asVerb;
    const noun = known ? candidates.find((c) => known.has(c)) : candidates[0];
    return noun ?? w;
  }
  return w;
}

/** True for words a tag should never be: stop words, numbers, single letters. */
export function isStopWord(word: string): boolean {
  return word.length < 2 || STOP.has(word) || /^\p{N}+$/u.test(word);
}

/** The distinct lemmas of a caption's content words, in order of first appearance. */
export function contentLemmas(text: string, known?: ReadonlySet<string>): string[] {
  const out = new Set<string>();
  for (const w of words(text)) {
    if (isStopWord(w)) continue;
    const l = lemma(w, known);
    if (!isStopWord(l)) out.add(l);
  }
  return [...out];
}
