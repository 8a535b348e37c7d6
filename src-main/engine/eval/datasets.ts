import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { CsvError, parse } from 'csv-parse/sync';
import { z } from 'zod';
import {
  CAPTIONS_FILE,
  type Flickr8kSplit,
  JA_CAPTIONS_FILE,
  parseJapaneseCaptions,
  readCaptions,
  readSplit,
} from '../datasets/flickr8k.ts';
import { ArgumentError, SagasuError } from '../errors.ts';
import { detectLanguage } from '../text/index.ts';

export type DatasetFormat = 'flickr8k' | 'demo' | 'coco' | 'csv' | 'tsv';
export type CaptionLang = 'en' | 'ja';

const FLICKR8K_JA_CAPTIONS_FILE = JA_CAPTIONS_FILE;

export interface EvalCaption {
  text: string;
  /** Index into EvalDataset.images. */
  image: number;
  /** Where the caption was read (file:line, or file and JSON path), for reports and errors. */
  where: string;
}

/** Anyone's captioned photos, read from one of the three formats `sagasu eval` accepts. */
export interface EvalDataset {
  /** The path as given. */
  path: string;
  format: DatasetFormat;
  /** The Flickr8k split read (Flickr8k folders only). */
  split?: Flickr8kSplit;
  /** Absolute image paths, distinct, in the order the data set lists them. */
  images: string[];
  captions: EvalCaption[];
  /** The language of the captions file that was read (Flickr8k), or undefined when it was not chosen. */
  lang?: CaptionLang;
}

export interface LoadDatasetOptions {
  /** Flickr8k: which split (default test). */
  split?: Flickr8kSplit;
  /** Flickr8k: `ja` reads Flickr8k.token.ja.txt; anything else the English token file. */
  lang?: 'en' | 'ja' | 'auto';
  /** COCO: the folder holding the images the JSON names. */
  images?: string;
  log?: (line: string) => void;
}

function damaged(where: string, reason: string): SagasuError {
  return new SagasuError('dataset-damaged', where, reason);
}

/**
 * Reads a captioned data set, its format detected from the path: a folder holding Flickr8k.token.txt
 * (Flickr8k layout), a .json file (COCO captions, with `images`), or a .csv / .tsv file with a header naming
 * the columns `image` and `caption`. Every malformed input is an error naming the file and line.
 */
export async function loadEvalDataset(path: string, options: LoadDatasetOptions = {}): Promise<EvalDataset> {
  const info = await stat(path).catch((cause: unknown) => {
    throw new SagasuError('missing-dataset', path, 'no such file or folder', { cause });
  });
  if (info.isDirectory()) {
    const has = async (name: string) => (await stat(join(path, name)).catch(() => undefined)) !== undefined;
    const isDemo = !(await has(CAPTIONS_FILE)) && (await has(DEMO_ATTRIBUTION));
    return isDemo ? loadDemo(path) : loadFlickr8k(path, options);
  }
  const ext = extname(path).toLowerCase();
  if (ext === '.json') return loadCoco(path, options);
  if (ext === '.csv' || ext === '.tsv') return loadTable(path, ext === '.tsv' ? 'tsv' : 'csv');
  throw new ArgumentError(
    '--dataset',
    `${path}: not a data set sagasu knows: expected a Flickr8k-style folder (with ${CAPTIONS_FILE}), a COCO captions .json, or a .csv/.tsv with the columns image and caption`,
  );
}

// ---------------------------------------------------------------------------------------------------------
// Flickr8k

async function readJapaneseCaptions(dir: string, log: (line: string) => void) {
  const file = join(dir, FLICKR8K_JA_CAPTIONS_FILE);
  const text = await readFile(file, 'utf8').catch((cause: unknown) => {
    throw new SagasuError('missing-dataset', file, 'cannot read the Japanese Flickr8k captions', { cause });
  });
  // A folder of one's own may hold a part of the captions, but never one key twice.
  const captions = parseJapaneseCaptions(text, file, log);
  const seen = new Set<string>();
  for (const c of captions) {
    const key = `${c.image}#${c.n}`;
    if (seen.has(key)) throw damaged(`${file}:${c.line}`, `caption key "[${key}]" appears twice`);
    seen.add(key);
  }
  return { file, captions };
}

async function loadFlickr8k(dir: string, options: LoadDatasetOptions): Promise<EvalDataset> {
  const log = options.log ?? (() => {});
  const split = options.split ?? 'test';
  const lang: CaptionLang = options.lang === 'ja' ? 'ja' : 'en';
  const tokenFile = join(dir, lang === 'ja' ? FLICKR8K_JA_CAPTIONS_FILE : CAPTIONS_FILE);
  if (!(await stat(tokenFile).catch(() => undefined)))
    throw new ArgumentError(
      '--dataset',
      `${dir} is a folder without ${basename(tokenFile)}; a Flickr8k-style folder holds ${CAPTIONS_FILE}, the split files and images/`,
    );
  const names = await readSplit(split, dir).catch((cause: unknown) => {
    throw new SagasuError('missing-dataset', join(dir, `the ${split} split file`), 'cannot read it', {
      cause,
    });
  });
  // Code-unit order, as data:prepare lists them: the same rows, so the same scores, as `npm run eval`.
  const sorted = [...new Set(names)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const indexOf = new Map(sorted.map((name, i) => [name, i]));
  const read =
    lang === 'ja'
      ? await readJapaneseCaptions(dir, log)
      : { file: tokenFile, captions: (await readCaptions(dir, log)).captions };
  const captions: EvalCaption[] = [];
  for (const c of read.captions) {
    const image = indexOf.get(c.image);
    if (image !== undefined) captions.push({ text: c.text, image, where: `${read.file}:${c.line}` });
  }
  return {
    path: dir,
    format: 'flickr8k',
    split,
    lang,
    images: sorted.map((name) => resolve(dir, 'images', name)),
    captions,
  };
}

// ---------------------------------------------------------------------------------------------------------
// The demo library (npm run demo:build): attribution.json lists each photo with what it `shows`

export const DEMO_ATTRIBUTION = 'attribution.json';
/** A JSON data-set file, its text kept for line numbers; a file that is not JSON is refused at its line. */
async function readJsonFile(file: string, what: string): Promise<{ text: string; json: unknown }> {
  const text = await readFile(file, 'utf8').catch((cause: unknown) => {
    throw new SagasuError('missing-dataset', file, `cannot read ${what}`, { cause });
  });
  try {
    return { text, json: JSON.parse(text) };
  } catch (cause) {
    const message = (cause as Error).message;
    const at = /position (\d+)/.exec(message);
    throw damaged(at ? `${file}:${lineOf(text, Number(at[1]))}` : file, `not JSON: ${message}`);
  }
}

const demoSchema = z.array(z.looseObject({ file: z.string().min(1), shows: z.string() })).min(1);

/**
 * A folder built like assets/sample-library: one caption per photo, its `shows` line. A foreign set for
 * checking how the models generalize; never training data.
 */
async function loadDemo(dir: string): Promise<EvalDataset> {
  const file = join(dir, DEMO_ATTRIBUTION);
  const { text, json } = await readJsonFile(file, 'the demo attribution file');
  const parsed = demoSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const [k] = issue?.path ?? [];
    const line =
      typeof k === 'number' ? (lineOfNth(text, 'file', k) ?? lineOfNth(text, 'shows', k)) : undefined;
    const where = (issue?.path ?? [])
      .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
      .join('');
    throw damaged(
      line ? `${file}:${line}` : file,
      `not a demo attribution list ([{ file, shows }, …]): ${where.replace(/^\./, '') || '(root)'}: ${issue?.message}`,
    );
  }
  const images: string[] = [];
  const captions: EvalCaption[] = [];
  const seen = new Set<string>();
  for (const [k, entry] of parsed.data.entries()) {
    const where = `${file}:${lineOfNth(text, 'file', k) ?? '?'}`;
    const path = resolve(dir, entry.file);
    if (seen.has(path)) throw damaged(where, `${entry.file} is listed twice`);
    seen.add(path);
    captions.push({ text: entry.shows, image: images.length, where });
    images.push(path);
  }
  return { path: dir, format: 'demo', images, captions };
}

// ---------------------------------------------------------------------------------------------------------
// COCO captions JSON

const cocoId = z.union([z.number().int(), z.string().min(1)]);
const cocoSchema = z.looseObject({
  images: z.array(z.looseObject({ id: cocoId, file_name: z.string().min(1) })),
  annotations: z.array(z.looseObject({ image_id: cocoId, caption: z.string() })),
});

/** The 1-based line of a character offset, for JSON syntax errors. */
function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let k = 0; k < offset && k < text.length; k++) if (text.charCodeAt(k) === 10) line++;
  return line;
}

/** The line where the n-th occurrence of a key starts, so schema errors point into the file. */
function lineOfNth(text: string, key: string, n: number): number | undefined {
  const pattern = new RegExp(`"${key}"\\s*:`, 'g');
  let match: RegExpExecArray | null = null;
  for (let k = 0; k <= n; k++) {
    match = pattern.exec(text);
    if (!match) return undefined;
  }
  return match ? lineOf(text, match.index) : undefined;
}

async function loadCoco(file: string, options: LoadDatasetOptions): Promise<EvalDataset> {
  if (!options.images)
    throw new ArgumentError(
      '--images',
      `${file} is a COCO captions file; give the folder holding its images with --images <dir>`,
    );
  const imagesDir = options.images;
  const { text, json } = await readJsonFile(file, 'the COCO captions file');
  const parsed = cocoSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path ?? [];
    // images[k].x or annotations[k].x: the k-th object of that list; find the line of its key.
    const [list, k, key] = path;
    const anchor = list === 'images' ? 'file_name' : 'caption';
    const line =
      typeof k === 'number' ? lineOfNth(text, typeof key === 'string' ? key : anchor, k) : undefined;
    const where = path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
    throw damaged(
      line ? `${file}:${line}` : file,
      `not a COCO captions file: ${where.replace(/^\./, '') || '(root)'}: ${issue?.message}`,
    );
  }
  const { images, annotations } = parsed.data;
  const indexOf = new Map<string, number>();
  const paths: string[] = [];
  for (const [k, img] of images.entries()) {
    const key = String(img.id);
    if (indexOf.has(key))
      throw damaged(`${file}:${lineOfNth(text, 'file_name', k) ?? '?'}`, `image id ${key} appears twice`);
    indexOf.set(key, paths.length);
    paths.push(resolve(imagesDir, img.file_name));
  }
  const captions: EvalCaption[] = [];
  for (const [k, a] of annotations.entries()) {
    const line = lineOfNth(text, 'caption', k);
    const where = line ? `${file}:${line}` : `${file} annotations[${k}]`;
    const image = indexOf.get(String(a.image_id));
    if (image === undefined)
      throw damaged(where, `annotations[${k}] names image_id ${a.image_id}, which "images" does not list`);
    captions.push({ text: a.caption, image, where });
  }
  return { path: file, format: 'coco', images: paths, captions };
}

// ---------------------------------------------------------------------------------------------------------
// CSV / TSV

async function loadTable(file: string, format: 'csv' | 'tsv'): Promise<EvalDataset> {
  const text = await readFile(file, 'utf8').catch((cause: unknown) => {
    throw new SagasuError('missing-dataset', file, 'cannot read the captions file', { cause });
  });
  let rows: { record: string[]; info: { lines: number } }[];
  try {
    rows = parse(text, {
      bom: true,
      delimiter: format === 'tsv' ? '\t' : ',',
      // Tab-separated files are written without quoting; a caption may well hold a quote mark.
      quote: format === 'tsv' ? false : '"',
      info: true,
      skip_empty_lines: true,
    }) as unknown as { record: string[]; info: { lines: number } }[];
  } catch (cause) {
    if (!(cause instanceof CsvError)) throw cause;
    const line = (cause as CsvError & { lines?: number }).lines;
    throw damaged(line ? `${file}:${line}` : file, cause.message);
  }
  const header = rows[0];
  if (!header) throw damaged(file, 'is empty; expected a header with the columns image and caption');
  const names = header.record.map((h) => h.trim().toLowerCase());
  const imageCol = names.indexOf('image');
  const captionCol = names.indexOf('caption');
  if (imageCol < 0 || captionCol < 0)
    throw damaged(
      `${file}:${header.info.lines}`,
      `the header (${header.record.join(', ')}) lacks ${imageCol < 0 ? 'an "image"' : 'a "caption"'} column; it needs image (a path relative to this file) and caption`,
    );
  const base = dirname(resolve(file));
  const indexOf = new Map<string, number>();
  const images: string[] = [];
  const captions: EvalCaption[] = [];
  for (const { record, info } of rows.slice(1)) {
    const where = `${file}:${info.lines}`;
    const name = (record[imageCol] ?? '').trim();
    if (!name) throw damaged(where, 'the image column is empty');
    const path = resolve(base, name);
    let image = indexOf.get(path);
    if (image === undefined) {
      image = images.length;
      indexOf.set(path, image);
      images.push(path);
    }
    captions.push({ text: record[captionCol] ?? '', image, where });
  }
  if (captions.length === 0) throw damaged(file, 'has a header but no caption rows');
  return { path: file, format, images, captions };
}

// ---------------------------------------------------------------------------------------------------------

/**
 * `auto` for a whole data set: the language most captions are written in, by script (detectLanguage).
 * Captions without a letter ("...", "!!!") have no script and do not vote.
 */
export function detectLang(texts: readonly string[]): CaptionLang {
  let ja = 0;
  let voters = 0;
  for (const t of texts) {
    if (!/\p{L}/u.test(t)) continue;
    voters++;
    if (detectLanguage(t) === 'ja') ja++;
  }
  return ja * 2 > voters ? 'ja' : 'en';
}
