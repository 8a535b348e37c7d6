import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join, resolve } from 'node:path';
import { ArgumentError, SagasuError } from '../errors.ts';
import { bytesOf, sha256Hex } from '../files.ts';
import { cacheDir } from '../paths.ts';
import { JA_TOKENIZER_VERSION, japaneseTokenizer, Vocabulary } from '../text/index.ts';
import {
  type Flickr8kImageSplit,
  JA_CAPTIONS_FILE,
  type JapaneseCaption,
  parseJapaneseCaptions,
  readCaptions,
  requireFlickr8kDir,
} from './flickr8k.ts';

export { JA_CAPTIONS_FILE, type JapaneseCaption };

import {
  CAPTION_FILES,
  DEFAULT_MIN_COUNT,
  defaultPreparedDir,
  encodeCaptions,
  PREPARED_FORMAT,
} from './prepare.ts';

/**
 * A captions-only data set: the Japanese captions as token ids, pointing at an English prepared folder
 * for the images (images.tsv indexes, fne.i8). The image side of the Japanese encoder is the shipped
 * English model's, so the photos' features are the English data set's, never a second copy.
 */
const PREPARED_JA_FORMAT = 'sagasu-flickr8k-captions/1';
export const defaultPreparedJaDir = join(cacheDir, 'data', 'flickr8k-ja');

type PreparedJaFile = (typeof CAPTION_FILES)[number];

/**
 * Sentences written for this project (not taken from the data set, whose texts may not ship), tokenized
 * here with the app's tokenizer and vocabulary into `fixture_sentences.json`: training/export_ja.py encodes
 * them for the parity fixtures, and the parity test tokenizes them again in TypeScript, so the fixtures
 * prove the ids, not only the network.
 */
export const FIXTURE_SENTENCES = [
  '芝生の上を走る茶色の犬',
  '浜辺を走る犬',
  '赤いシャツを着た男の子が公園で自転車に乗っている',
  '雪の中で遊ぶ二匹の犬',
  '水に飛び込む黒い犬',
] as const;
export const FIXTURE_SENTENCES_FILE = 'fixture_sentences.json';

/**
 * The Japanese captions, in file order, without the bogus id. The file must have the English file's keys
 * in the English file's order: a translation that lost or swapped a line would pair captions with the
 * wrong photos without any error.
 */
export async function readJapaneseCaptions(
  dir = requireFlickr8kDir(),
  log: (line: string) => void = () => {},
): Promise<JapaneseCaption[]> {
  const file = join(dir, JA_CAPTIONS_FILE);
  const text = await readFile(file, 'utf8').catch((cause: unknown) => {
    throw new SagasuError('missing-dataset', file, 'cannot read the Japanese Flickr8k captions', { cause });
  });
  const english = (await readCaptions(dir)).captions;
  const out = parseJapaneseCaptions(text, file, log);
  for (const [k, { image, n, line }] of out.entries()) {
    const en = english[k];
    if (!en || en.image !== image || en.n !== n)
      throw new SagasuError(
        'dataset-damaged',
        `${file}:${line}`,
        `caption ${image}#${n} where the English file has ${en ? `${en.image}#${en.n}` : 'no more captions'}`,
      );
  }
  if (out.length !== english.length)
    throw new SagasuError(
      'dataset-damaged',
      file,
      `${out.length} captions, the English file has ${english.length}`,
    );
  return out;
}

interface PrepareJaOptions {
  /** The English prepared folder whose images.tsv indexes the photos (default .cache/data/flickr8k). */
  images?: string;
  /** Output folder (default .cache/data/flickr8k-ja). */
  out?: string;
  dataDir?: string;
  minCount?: number;
  log?: (line: string) => void;
}

interface PreparedJaMeta {
  format: string;
  language: 'ja';
  dataset: string;
  images: { dir: string; format: string; metaSha256: string; count: number };
  captions: number;
  emptyCaptions: number;
  tokens: number;
  vocab: { size: number; minCount: number; from: string; padId: 0; unkId: 1 };
  tokensBySplit: Record<Flickr8kImageSplit, { tokens: number; unknown: number }>;
  tokenizer: string;
  files: Record<PreparedJaFile, { bytes: number; sha256: string }>;
}

/**
 * Tokenizes every Japanese caption with the app's Japanese tokenizer (the one queries go through) and
 * writes the token ids, vocabulary (train+val, minimum count), and caption -> image index of the English
 * prepared folder. Deterministic: the same inputs give the same bytes; meta.json goes last.
 */
export async function prepareFlickr8kJapanese(options: PrepareJaOptions = {}): Promise<PreparedJaMeta> {
  const log = options.log ?? (() => {});
  const imagesDir = resolve(options.images ?? defaultPreparedDir);
  const out = resolve(options.out ?? defaultPreparedJaDir);
  const dataDir = options.dataDir ?? requireFlickr8kDir();
  const minCount = options.minCount ?? DEFAULT_MIN_COUNT;
  if (!Number.isInteger(minCount) || minCount < 1)
    throw new ArgumentError('--min-count', `expected a positive integer, got ${options.minCount}`);
  if (endianness() !== 'LE')
    throw new SagasuError('unsupported-platform', 'data:prepare', 'needs a little-endian machine');

  const metaPath = join(imagesDir, 'meta.json');
  const metaBytes = await readFile(metaPath).catch((cause: unknown) => {
    throw new SagasuError(
      'missing-dataset',
      metaPath,
      'no English prepared data set here (run `npm run data:prepare` first, or pass --images)',
      { cause },
    );
  });
  const imagesMeta = JSON.parse(metaBytes.toString('utf8')) as { format?: string };
  if (imagesMeta.format !== PREPARED_FORMAT)
    throw new SagasuError(
      'dataset-damaged',
      metaPath,
      `format ${imagesMeta.format}, expected ${PREPARED_FORMAT}`,
    );
  const imageRows = (await readFile(join(imagesDir, 'images.tsv'), 'utf8'))
    .split('\n')
    .slice(1)
    .filter(Boolean)
    .map((l) => l.split('\t'));
  const indexOf = new Map(imageRows.map((r) => [r[1] as string, Number(r[0])]));
  const splitOf = imageRows.map((r) => r[2] as Flickr8kImageSplit);

  const all = await readJapaneseCaptions(dataDir, log);
  // A limited English folder (--limit-images) holds only some photos: their captions, nothing else.
  const kept = all.filter((c) => indexOf.has(c.image));
  const { tokenizer, loadMs } = await japaneseTokenizer();
  log(
    `data:prepare --lang ja: dictionary loaded in ${loadMs.toFixed(0)} ms; tokenizing ${kept.length} captions`,
  );
  const tokenLists = kept.map((c) => tokenizer.tokenize(c.text));
  const captionSplit = kept.map((c) => splitOf[indexOf.get(c.image) as number] as Flickr8kImageSplit);
  const vocab = Vocabulary.build(
    tokenLists.filter((_, k) => captionSplit[k] === 'train' || captionSplit[k] === 'val'),
    minCount,
  );

  const { tokens, offsets, captionImage, tokensBySplit, emptyCaptions } = encodeCaptions(
    tokenLists,
    vocab,
    kept.map((c) => indexOf.get(c.image) as number),
    captionSplit,
  );

  const contents: Record<PreparedJaFile, Buffer> = {
    'vocab.txt': Buffer.from(vocab.toText(), 'utf8'),
    'captions.tsv': Buffer.from(
      [
        'index\timage_index\tn\tcaption\n',
        ...kept.map((c, k) => `${k}\t${captionImage[k]}\t${c.n}\t${c.text}\n`),
      ].join(''),
      'utf8',
    ),
    'tokens.i32': bytesOf(tokens),
    'offsets.i32': bytesOf(offsets),
    'caption_image.i32': bytesOf(captionImage),
  };
  await mkdir(out, { recursive: true });
  await rm(join(out, 'meta.json'), { force: true });
  const files = {} as PreparedJaMeta['files'];
  for (const name of CAPTION_FILES) {
    const bytes = contents[name];
    await writeFile(join(out, `${name}.tmp`), bytes);
    await rename(join(out, `${name}.tmp`), join(out, name));
    files[name] = { bytes: bytes.length, sha256: sha256Hex(bytes) };
  }
  const meta: PreparedJaMeta = {
    format: PREPARED_JA_FORMAT,
    language: 'ja',
    dataset: 'Flickr8k captions machine-translated into Japanese (Flickr8k.token.ja.txt)',
    images: {
      dir: imagesDir,
      format: PREPARED_FORMAT,
      metaSha256: sha256Hex(metaBytes),
      count: imageRows.length,
    },
    captions: kept.length,
    emptyCaptions,
    tokens: tokens.length,
    vocab: { size: vocab.size, minCount, from: 'train+val captions', padId: 0, unkId: 1 },
    tokensBySplit,
    tokenizer: JA_TOKENIZER_VERSION,
    files,
  };
  // Beside the data, not part of it (meta.json does not list it): new sentences never change the data's hash.
  await writeFile(
    join(out, FIXTURE_SENTENCES_FILE),
    `${JSON.stringify(
      FIXTURE_SENTENCES.map((text) => {
        const words = tokenizer.tokenize(text);
        return { text, tokens: words, ids: [...vocab.encode(words)] };
      }),
      null,
      1,
    )}\n`,
  );
  await writeFile(join(out, 'meta.json.tmp'), `${JSON.stringify(meta, null, 2)}\n`);
  await rename(join(out, 'meta.json.tmp'), join(out, 'meta.json'));
  log(
    `data:prepare --lang ja: ${kept.length} captions (${emptyCaptions} with no tokens), ${tokens.length} tokens, ` +
      `vocabulary ${vocab.size} at min count ${minCount}, in ${out}`,
  );
  return meta;
}
