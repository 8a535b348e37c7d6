import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256File } from '../cnn/index.ts';
import {
  defaultPreparedDir,
  PREPARED_FORMAT,
  PROBS_FILE,
  PROBS_META,
  type PreparedProbsMeta,
} from '../datasets/prepare.ts';
import { SagasuError } from '../errors.ts';
import { sha256Hex } from '../files.ts';
import type { LayerColumns } from '../joint/index.ts';
import type { CaptionedImages } from './evaluate.ts';

export { defaultPreparedDir };

export type EvalSplit = 'test' | 'val';

/** One split of the prepared Flickr8k data, in the shape evaluateJointModel takes. */
export interface PreparedSplit extends CaptionedImages {
  dir: string;
  split: EvalSplit;
  /** Dataset image index (images.tsv) of each image row. */
  imageIndex: Int32Array;
  /** Dataset caption index (captions.tsv) of each caption. */
  captionIndex: Int32Array;
  /** The token ids data:prepare stored for each caption, with the vocabulary they index. */
  storedTokens: Int32Array[];
  vocabSha256: string;
  /** The layer map the FNE columns follow. */
  layers: LayerColumns[];
  /** sha256 of meta.json: the identity of this preparation (joint manifests record the one they trained on). */
  metaSha256: string;
}

interface Meta {
  format: string;
  images: number;
  captions: number;
  fneDim: number;
  oneLayerDim: number;
  tokenizer?: string;
  files: Record<string, { bytes: number; sha256: string }>;
}

function missing(dir: string, what: string, cause?: unknown): SagasuError {
  return new SagasuError(
    'missing-data',
    dir,
    `${what}; run \`npm run data:prepare\` to prepare Flickr8k (features and captions) first`,
    cause === undefined ? undefined : { cause },
  );
}

function damaged(file: string, reason: string): SagasuError {
  return new SagasuError('data-damaged', file, `${reason}; run \`npm run data:prepare\` again`);
}

/** Rows of TSV with a header, as data:prepare writes it: no quoting, no tab inside a field. */
function tsv(text: string, file: string, columns: readonly string[]): string[][] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (lines[0] !== columns.join('\t')) throw damaged(file, `expected the header "${columns.join(' ')}"`);
  return lines.slice(1).map((line, k) => {
    const fields = line.split('\t');
    if (fields.length !== columns.length)
      throw damaged(`${file}:${k + 2}`, `expected ${columns.length} fields, got ${fields.length}`);
    return fields;
  });
}

/**
 * Loads a split of the prepared data: only that split's rows of the feature files are read. Every file is
 * checked against the sha256 in meta.json first, since figures computed from a half-rewritten cache would
 * look like a model's fault.
 */
export async function loadPreparedSplit(
  dir = defaultPreparedDir,
  split: EvalSplit = 'test',
): Promise<PreparedSplit> {
  const metaFile = join(dir, 'meta.json');
  let metaText: string;
  try {
    metaText = await readFile(metaFile, 'utf8');
  } catch (cause) {
    throw missing(
      dir,
      'no prepared data here (meta.json is missing: data:prepare never ran or did not finish)',
      cause,
    );
  }
  const meta = JSON.parse(metaText) as Meta;
  if (meta.format !== PREPARED_FORMAT)
    throw damaged(metaFile, `format "${meta.format}", this reader knows "${PREPARED_FORMAT}"`);
  for (const [name, entry] of Object.entries(meta.files)) {
    const file = join(dir, name);
    const actual = await sha256File(file).catch((cause: unknown) => {
      throw missing(dir, `${name} is missing`, cause);
    });
    if (actual !== entry.sha256) throw damaged(file, `sha256 ${actual}, but meta.json says ${entry.sha256}`);
  }

  const imageRows = tsv(await readFile(join(dir, 'images.tsv'), 'utf8'), join(dir, 'images.tsv'), [
    'index',
    'image',
    'split',
    'sha256',
  ]);
  const imageIndex = Int32Array.from(imageRows.filter((r) => r[2] === split).map((r) => Number(r[0])));
  if (imageIndex.length === 0) throw damaged(join(dir, 'images.tsv'), `has no image in the ${split} split`);
  const rowOf = new Map<number, number>();
  for (const [row, i] of imageIndex.entries()) rowOf.set(i, row);

  const layers = JSON.parse(await readFile(join(dir, 'layers.json'), 'utf8')) as LayerColumns[];
  const fne = await readRows(join(dir, 'fne.i8'), imageIndex, meta.fneDim, 1, meta.images);
  const one = await readRows(join(dir, 'one_layer.f32'), imageIndex, meta.oneLayerDim, 4, meta.images);
  const fneRows = new Int8Array(fne.buffer, fne.byteOffset, fne.length);
  const oneRows = new Float32Array(one.buffer, one.byteOffset, one.length / 4);
  const images = Array.from(imageIndex, (_, row) => ({
    fne: fneRows.subarray(row * meta.fneDim, (row + 1) * meta.fneDim),
    oneLayer: oneRows.subarray(row * meta.oneLayerDim, (row + 1) * meta.oneLayerDim),
  }));

  const captionRows = tsv(await readFile(join(dir, 'captions.tsv'), 'utf8'), join(dir, 'captions.tsv'), [
    'index',
    'image_index',
    'n',
    'caption',
  ]);
  const tokens = int32(await readFile(join(dir, 'tokens.i32')));
  const offsets = int32(await readFile(join(dir, 'offsets.i32')));
  if (offsets.length !== captionRows.length + 1)
    throw damaged(
      join(dir, 'offsets.i32'),
      `holds ${offsets.length} offsets for ${captionRows.length} captions`,
    );
  const captions: { text: string; image: number }[] = [];
  const captionIndex: number[] = [];
  const storedTokens: Int32Array[] = [];
  for (const [index, imageIdx, , text] of captionRows) {
    const row = rowOf.get(Number(imageIdx));
    if (row === undefined) continue;
    const c = Number(index);
    captions.push({ text: text as string, image: row });
    captionIndex.push(c);
    storedTokens.push(tokens.subarray(offsets[c] as number, offsets[c + 1] as number));
  }
  return {
    dir,
    split,
    images,
    captions,
    imageIndex,
    captionIndex: Int32Array.from(captionIndex),
    storedTokens,
    vocabSha256: meta.files['vocab.txt']?.sha256 ?? '',
    layers,
    metaSha256: sha256Hex(metaText),
  };
}

/**
 * The class probabilities (1000 per image) of a loaded split's images, in its row order: written beside the
 * preparation by data:prepare, checked against the meta.json the split was read from.
 */
export async function loadPreparedProbs(split: PreparedSplit): Promise<Float32Array[]> {
  const metaFile = join(split.dir, PROBS_META);
  let meta: PreparedProbsMeta;
  try {
    meta = JSON.parse(await readFile(metaFile, 'utf8')) as PreparedProbsMeta;
  } catch (cause) {
    throw missing(
      split.dir,
      `${PROBS_META} is missing or unreadable (prepared before class probabilities were kept)`,
      cause,
    );
  }
  if (meta.metaSha256 !== split.metaSha256)
    throw damaged(metaFile, `belongs to another preparation (meta.json ${meta.metaSha256.slice(0, 12)}…)`);
  const file = join(split.dir, PROBS_FILE);
  const actual = await sha256File(file).catch((cause: unknown) => {
    throw missing(split.dir, `${PROBS_FILE} is missing`, cause);
  });
  if (actual !== meta.file.sha256)
    throw damaged(file, `sha256 ${actual}, but ${PROBS_META} says ${meta.file.sha256}`);
  const bytes = await readRows(file, split.imageIndex, meta.classes, 4, meta.images);
  const all = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  return Array.from(split.imageIndex, (_, row) => all.subarray(row * meta.classes, (row + 1) * meta.classes));
}

function int32(bytes: Buffer): Int32Array {
  const copy = new Uint8Array(bytes);
  return new Int32Array(copy.buffer, 0, copy.length >> 2);
}

/** The chosen rows of a row-major file, back to back, read without loading the whole file. */
async function readRows(
  file: string,
  rows: Int32Array,
  width: number,
  bytesPerValue: number,
  expectedRows: number,
): Promise<Uint8Array> {
  const rowBytes = width * bytesPerValue;
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    if (size !== expectedRows * rowBytes)
      throw damaged(file, `${size} bytes, expected ${expectedRows} rows of ${rowBytes}`);
    const out = new Uint8Array(rows.length * rowBytes);
    for (const [k, row] of rows.entries()) {
      const { bytesRead } = await handle.read(out, k * rowBytes, rowBytes, row * rowBytes);
      if (bytesRead !== rowBytes) throw damaged(file, `short read at row ${row}`);
    }
    return out;
  } finally {
    await handle.close();
  }
}
