import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SagasuError } from '../errors.ts';
import { sharedDir } from '../paths.ts';

export type Flickr8kSplit = 'train' | 'val' | 'test';
/** 'none': the 91 photos that the official split files do not list. */
export type Flickr8kImageSplit = Flickr8kSplit | 'none';
const FLICKR8K_SPLITS: readonly Flickr8kSplit[] = ['train', 'val', 'test'];

const SPLIT_FILES: Record<Flickr8kSplit, string> = {
  train: 'Flickr_8k.trainImages.txt',
  val: 'Flickr_8k.devImages.txt',
  test: 'Flickr_8k.testImages.txt',
};

/** The Flickr8k folder of the shared data (SAGASU_FLICKR8K overrides), or undefined when absent. */
export function flickr8kDir(): string | undefined {
  if (process.env.SAGASU_FLICKR8K) return process.env.SAGASU_FLICKR8K;
  const shared = sharedDir();
  return shared ? join(shared, 'data', 'flickr8k') : undefined;
}

export function requireFlickr8kDir(): string {
  const dir = flickr8kDir();
  if (!dir)
    throw new SagasuError(
      'missing-dataset',
      'flickr8k',
      'the Flickr8k folder was not found: set SAGASU_FLICKR8K or SAGASU_SHARED',
    );
  return dir;
}

/** Image file names of one official split, in file order. */
export async function readSplit(split: Flickr8kSplit, dir = requireFlickr8kDir()): Promise<string[]> {
  const text = await readFile(join(dir, SPLIT_FILES[split]), 'utf8');
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
}

/** Paths of the 224x224 copies of one split's images. */
export async function splitImagePaths(split: Flickr8kSplit, dir = requireFlickr8kDir()): Promise<string[]> {
  return (await readSplit(split, dir)).map((name) => join(dir, 'images', name));
}

export const CAPTIONS_FILE = 'Flickr8k.token.txt';

/**
 * The token file's one known bad key: 5 captions for an id with no photo, in no split. Named rather than
 * matched by pattern so that any other odd key stays an error someone has to look at.
 */
export const BOGUS_CAPTION_IMAGE = '2258277193_586949ec62.jpg.1';

/** The machine-translated Japanese captions: keys and order of the English file, keys written in brackets. */
export const JA_CAPTIONS_FILE = 'Flickr8k.token.ja.txt';

export interface JapaneseCaption {
  image: string;
  n: number;
  text: string;
  /** 1-based line in the file, for errors that name it. */
  line: number;
}

const JA_KEY = /^\[([^\s#/\\]+\.jpg)#(\d+)\]$/;

/**
 * The lines `[<id>.jpg#<n>]<TAB><caption>` of a Japanese token file, in file order, the bogus id skipped.
 * A malformed line is a 'dataset-damaged' SagasuError naming `file:line`; what else the captions must satisfy
 * (lining up with the English file, no repeated key) is the caller's to check.
 */
export function parseJapaneseCaptions(
  text: string,
  file: string,
  log: (line: string) => void = () => {},
): JapaneseCaption[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const out: JapaneseCaption[] = [];
  let bogus = 0;
  for (const [i, raw] of lines.entries()) {
    const line = i + 1;
    const fields = (raw.endsWith('\r') ? raw.slice(0, -1) : raw).split('\t');
    if (fields.length !== 2)
      throw new SagasuError(
        'dataset-damaged',
        `${file}:${line}`,
        `expected "[<id>.jpg#<n>]<TAB><caption>", found ${fields.length - 1} tabs`,
      );
    const [key, caption] = fields as [string, string];
    if (key.startsWith(`[${BOGUS_CAPTION_IMAGE}#`)) {
      bogus++;
      continue;
    }
    const match = JA_KEY.exec(key);
    if (!match)
      throw new SagasuError('dataset-damaged', `${file}:${line}`, `"${key}" is not a key [<id>.jpg#<n>]`);
    out.push({ image: match[1] as string, n: Number(match[2]), text: caption, line });
  }
  if (bogus > 0) log(`flickr8k-ja: skipped ${bogus} captions of ${BOGUS_CAPTION_IMAGE}, an id with no photo`);
  return out;
}

interface Flickr8kCaption {
  /** Image file name, e.g. 1000268201_693b08cb0e.jpg. */
  image: string;
  /** The caption's number for its image, 0-4. */
  n: number;
  /** The caption as written in the file (already space-separated, Penn-Treebank style). */
  text: string;
  /** 1-based line in the token file. */
  line: number;
}

const CAPTION_KEY = /^([^\s#/\\]+\.jpg)#(\d+)$/;

interface Flickr8kCaptions {
  captions: Flickr8kCaption[];
  /** Captions of BOGUS_CAPTION_IMAGE that were left out. */
  skipped: number;
}

/**
 * The English captions, in file order, without the bogus id. Lines are `<id>.jpg#<n><TAB><caption>`; any
 * other line (no tab, a second tab, a bad key, a key given twice) is an error naming the file and line,
 * since a silently dropped caption would shift every index after it.
 */
export async function readCaptions(
  dir = requireFlickr8kDir(),
  log: (line: string) => void = () => {},
): Promise<Flickr8kCaptions> {
  const file = join(dir, CAPTIONS_FILE);
  const text = await readFile(file, 'utf8').catch((cause: unknown) => {
    throw new SagasuError('missing-dataset', file, 'cannot read the Flickr8k captions', { cause });
  });
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const captions: Flickr8kCaption[] = [];
  const seen = new Set<string>();
  let bogus = 0;
  for (const [i, raw] of lines.entries()) {
    const line = i + 1;
    const content = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const malformed = (reason: string) => new SagasuError('dataset-damaged', `${file}:${line}`, reason);
    const fields = content.split('\t');
    if (fields.length !== 2)
      throw malformed(`expected "<id>.jpg#<n><TAB><caption>", found ${fields.length - 1} tabs`);
    const [key, caption] = fields as [string, string];
    if (key.startsWith(`${BOGUS_CAPTION_IMAGE}#`)) {
      bogus++;
      continue;
    }
    const match = CAPTION_KEY.exec(key);
    if (!match) throw malformed(`"${key}" is not a caption key <id>.jpg#<n>`);
    if (seen.has(key)) throw malformed(`caption key "${key}" appears twice`);
    seen.add(key);
    captions.push({ image: match[1] as string, n: Number(match[2]), text: caption, line });
  }
  if (bogus > 0)
    log(`flickr8k: skipped ${bogus} captions of ${BOGUS_CAPTION_IMAGE}, an id with no photo and no split`);
  return { captions, skipped: bogus };
}

export interface Flickr8kImage {
  /** File name in images/. */
  image: string;
  path: string;
  split: Flickr8kImageSplit;
}

/**
 * Every photo in images/ (not only those of a split), sorted by file name in code-unit order, with its
 * split. A split file naming a photo that is not there is an error: the official split would be incomplete.
 */
export async function listImages(dir = requireFlickr8kDir()): Promise<Flickr8kImage[]> {
  const imagesDir = join(dir, 'images');
  const entries = await readdir(imagesDir, { withFileTypes: true }).catch((cause: unknown) => {
    throw new SagasuError('missing-dataset', imagesDir, 'cannot list the Flickr8k images', { cause });
  });
  const names = entries
    .filter((e) => e.isFile())
    .map((e) => e.name)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const splitOf = new Map<string, Flickr8kSplit>();
  for (const split of FLICKR8K_SPLITS) {
    for (const name of await readSplit(split, dir)) {
      const earlier = splitOf.get(name);
      if (earlier)
        throw new SagasuError('dataset-damaged', name, `is in both the ${earlier} and the ${split} split`);
      splitOf.set(name, split);
    }
  }
  const present = new Set(names);
  for (const [name, split] of splitOf)
    if (!present.has(name))
      throw new SagasuError('dataset-damaged', join(imagesDir, name), `is in the ${split} split but missing`);
  return names.map((image) => ({ image, path: join(imagesDir, image), split: splitOf.get(image) ?? 'none' }));
}

interface Flickr8kManifestEntry {
  split: Flickr8kImageSplit;
  /** sha256 of the 224x224 copy in images/. */
  sha256: string;
}

/** manifest.tsv (split and sha256 of every photo) when the folder has one, for checking what was read. */
export async function readManifest(
  dir = requireFlickr8kDir(),
): Promise<Map<string, Flickr8kManifestEntry> | undefined> {
  const file = join(dir, 'manifest.tsv');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n').filter((l) => l !== '');
  const header = (lines[0] ?? '').split('\t');
  const col = (name: string) => {
    const i = header.indexOf(name);
    if (i < 0) throw new SagasuError('dataset-damaged', `${file}:1`, `the header has no "${name}" column`);
    return i;
  };
  const [imageCol, splitCol, shaCol] = [col('image'), col('split'), col('sha256_224')];
  const entries = new Map<string, Flickr8kManifestEntry>();
  for (const [i, line] of lines.entries()) {
    if (i === 0) continue;
    const fields = line.split('\t');
    const image = fields[imageCol];
    const split = fields[splitCol];
    const sha256 = fields[shaCol];
    if (
      !image ||
      !sha256 ||
      !/^[0-9a-f]{64}$/.test(sha256) ||
      !['train', 'val', 'test', 'none'].includes(split ?? '')
    )
      throw new SagasuError('dataset-damaged', `${file}:${i + 1}`, 'expected an image, a split and a sha256');
    entries.set(image, { split: split as Flickr8kImageSplit, sha256 });
  }
  return entries;
}
