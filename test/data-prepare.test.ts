import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imagenetClassProbs } from '../src-main/engine/cnn/index.ts';
import { FeatureCache } from '../src-main/engine/datasets/feature-cache.ts';
import {
  BOGUS_CAPTION_IMAGE,
  flickr8kDir,
  readCaptions,
  readManifest,
} from '../src-main/engine/datasets/flickr8k.ts';
import {
  PREPARED_FILES,
  PROBS_FILE,
  PROBS_META,
  type PrepareReport,
  prepareFlickr8k,
} from '../src-main/engine/datasets/prepare.ts';
import { SagasuError } from '../src-main/engine/errors.ts';
import { loadPreparedProbs, loadPreparedSplit } from '../src-main/engine/eval/prepared.ts';
import { FneExtractor } from '../src-main/engine/fne/index.ts';
import { projectRoot } from '../src-main/engine/paths.ts';
import { TOKENIZER_VERSION, tokenizeEnglish, Vocabulary } from '../src-main/engine/text/index.ts';
import { skipNote } from './helpers/shared.ts';

const FNE_DIM = 17056;
const ONE_DIM = 1280;
const LIMIT = 24;

describe('the Flickr8k captions loader on a damaged token file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sagasu-captions-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const load = async (text: string) => {
    await writeFile(join(dir, 'Flickr8k.token.txt'), text);
    const lines: string[] = [];
    return { ...(await readCaptions(dir, (l) => lines.push(l))), lines };
  };

  it('reads keys, numbers and texts and skips the bogus id with one log line', async () => {
    const { captions, skipped, lines } = await load(
      `a_b.jpg#0\tA dog .\n${BOGUS_CAPTION_IMAGE}#0\tpeople\n${BOGUS_CAPTION_IMAGE}#1\tmore people\na_b.jpg#1\t\n`,
    );
    expect(captions).toEqual([
      { image: 'a_b.jpg', n: 0, text: 'A dog .', line: 1 },
      { image: 'a_b.jpg', n: 1, text: '', line: 4 },
    ]);
    expect(skipped).toBe(2);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(BOGUS_CAPTION_IMAGE);
  });

  it('refuses a malformed line with a typed error naming the file and line number', async () => {
    for (const [text, line] of [
      ['a.jpg#0\tok\na.jpg#1 no tab here\n', 2],
      ['a.jpg#0\tone\ttwo\n', 1],
      ['a.jpg#0\tok\na.jpg#1\tok\nb.png#0\tnot a jpg\n', 3],
      ['a.jpg\tno number\n', 1],
      ['a.jpg#0\tok\na.jpg#0\tagain\n', 2],
      ['a.jpg#0\tok\n\na.jpg#1\tok\n', 2],
    ] as const) {
      const error = await load(text).catch((e: unknown) => e);
      expect(error, text).toBeInstanceOf(SagasuError);
      expect((error as SagasuError).code).toBe('dataset-damaged');
      expect((error as SagasuError).subject).toBe(`${join(dir, 'Flickr8k.token.txt')}:${line}`);
    }
  });
});

describe(`the Flickr8k token file${skipNote({ shared: true })}`, () => {
  it.skipIf(skipNote({ shared: true }))('has 40,455 captions once the bogus id is skipped', async () => {
    const lines: string[] = [];
    const { captions, skipped } = await readCaptions(flickr8kDir(), (l) => lines.push(l));
    expect(captions).toHaveLength(40455);
    expect(skipped).toBe(5);
    expect(captions.some((c) => c.image.startsWith(BOGUS_CAPTION_IMAGE))).toBe(false);
    expect(lines).toEqual([expect.stringContaining(BOGUS_CAPTION_IMAGE)]);
  });
});

describe('data:prepare arguments', () => {
  it('refuses thresholds that are not negative,positive, naming the option, before any work', () => {
    for (const bad of ['0.2,0.1', '-0.5', 'a,b']) {
      const run = spawnSync(
        process.execPath,
        ['--import', 'tsx', join(projectRoot, 'src-main', 'cli', 'data-prepare.ts'), `--thresholds=${bad}`],
        { encoding: 'utf8' },
      );
      expect(run.status, bad).toBe(1);
      expect(run.stderr.split('\n')[0]).toBe(
        `error: option '--thresholds <negative,positive>' argument '${bad}' is invalid. expected two numbers, negative,positive (e.g. -0.25,0.15)`,
      );
    }
  });
});

const note = skipNote({ shared: true, cnn: true });

describe.skipIf(note)(`npm run data:prepare --limit-images ${LIMIT}${note}`, () => {
  let root: string;
  let out: string;
  let first: PrepareReport;
  let firstBytes: Map<string, Buffer>;
  const logs: string[] = [];
  let firstLogs: string[];

  const prepare = () =>
    prepareFlickr8k({
      out,
      featureCacheRoot: join(root, 'features'),
      limitImages: LIMIT,
      log: (l) => logs.push(l),
    });
  const readAll = async () =>
    new Map(
      await Promise.all(
        [...PREPARED_FILES, 'meta.json', PROBS_FILE, PROBS_META].map(
          async (f) => [f, await readFile(join(out, f))] as const,
        ),
      ),
    );
  const int32 = (b: Buffer) => new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
  const tsv = (b: Buffer) =>
    b
      .toString('utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split('\t'));

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'sagasu-prepare-'));
    out = join(root, 'out');
    first = await prepare();
    firstLogs = [...logs];
    firstBytes = await readAll();
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it('computes every image once on a cold cache', () => {
    expect(first.computed).toBe(LIMIT);
    expect(first.reused).toBe(0);
  });

  it('writes every file at the size the contract gives, with the sha256 meta.json records', async () => {
    const meta = first.meta;
    const captions = meta.captions;
    const offsets = int32(firstBytes.get('offsets.i32') as Buffer);
    expect(meta).toMatchObject({ images: LIMIT, limitImages: LIMIT, fneDim: FNE_DIM, oneLayerDim: ONE_DIM });
    expect(meta.tokenizer).toBe(TOKENIZER_VERSION);
    expect(meta.vocab.minCount).toBe(4);
    const expected: Record<string, number> = {
      'fne.i8': LIMIT * FNE_DIM,
      'one_layer.f32': LIMIT * ONE_DIM * 4,
      'offsets.i32': (captions + 1) * 4,
      'caption_image.i32': captions * 4,
      'tokens.i32': (offsets[captions] as number) * 4,
    };
    for (const [file, bytes] of Object.entries(expected))
      expect(firstBytes.get(file)?.length, file).toBe(bytes);
    expect(offsets[captions]).toBe(meta.tokens);
    expect(tsv(firstBytes.get('images.tsv') as Buffer)).toHaveLength(LIMIT + 1);
    expect(tsv(firstBytes.get('captions.tsv') as Buffer)).toHaveLength(captions + 1);
    expect(Vocabulary.parse((firstBytes.get('vocab.txt') as Buffer).toString('utf8'), 'vocab.txt').size).toBe(
      meta.vocab.size,
    );
    for (const file of PREPARED_FILES) {
      const bytes = firstBytes.get(file) as Buffer;
      expect(meta.files[file], file).toEqual({
        bytes: bytes.length,
        sha256: createHash('sha256').update(bytes).digest('hex'),
      });
    }
    expect(JSON.parse((firstBytes.get('meta.json') as Buffer).toString('utf8'))).toEqual(meta);
    const layers = JSON.parse((firstBytes.get('layers.json') as Buffer).toString('utf8')) as {
      offset: number;
      channels: number;
    }[];
    expect(layers).toHaveLength(52);
    expect(Object.keys(layers[0] as object)).toEqual(['name', 'kind', 'offset', 'channels']);
    const last = layers.at(-1) as { offset: number; channels: number };
    expect(last.offset + last.channels).toBe(FNE_DIM);
  });

  it('lists the first images by file name with the manifest split and sha256', async () => {
    const rows = tsv(firstBytes.get('images.tsv') as Buffer);
    expect(rows[0]).toEqual(['index', 'image', 'split', 'sha256']);
    const names = rows.slice(1).map((r) => r[1] as string);
    expect(names).toEqual([...names].sort());
    const manifest = await readManifest(flickr8kDir());
    const firstNames = [...(manifest?.keys() ?? [])].sort().slice(0, LIMIT);
    expect(names).toEqual(firstNames);
    for (const [i, row] of rows.slice(1).entries()) {
      const entry = manifest?.get(row[1] as string);
      expect(row).toEqual([String(i), row[1], entry?.split, entry?.sha256]);
    }
  });

  it('holds ternary FNE rows equal to what FneExtractor gives for the same file', async () => {
    const fneBytes = firstBytes.get('fne.i8') as Buffer;
    const fne = new Int8Array(fneBytes.buffer, fneBytes.byteOffset, fneBytes.length);
    const counts = new Map<number, number>();
    for (const v of fne) counts.set(v, (counts.get(v) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual([-1, 0, 1]);
    const oneBytes = firstBytes.get('one_layer.f32') as Buffer;
    const one = new Float32Array(
      oneBytes.buffer.slice(oneBytes.byteOffset, oneBytes.byteOffset + oneBytes.length),
    );
    const rows = tsv(firstBytes.get('images.tsv') as Buffer).slice(1);
    const picks = [0, 7, LIMIT - 1];
    const extractor = await FneExtractor.open();
    try {
      const dir = flickr8kDir() as string;
      let k = 0;
      for await (const result of extractor.extract(
        picks.map((i) => join(dir, 'images', rows[i]?.[1] as string)),
      )) {
        const i = picks[k++] as number;
        if (!result.ok) throw result.error;
        expect([...(result.features.fne as Int8Array)]).toEqual([
          ...fne.subarray(i * FNE_DIM, (i + 1) * FNE_DIM),
        ]);
        expect([...result.features.oneLayer]).toEqual([...one.subarray(i * ONE_DIM, (i + 1) * ONE_DIM)]);
      }
    } finally {
      await extractor.close();
    }
  });

  it('keeps captions, offsets, image indices and tokens consistent, without the bogus id', async () => {
    const rows = tsv(firstBytes.get('captions.tsv') as Buffer);
    expect(rows[0]).toEqual(['index', 'image_index', 'n', 'caption']);
    const offsets = int32(firstBytes.get('offsets.i32') as Buffer);
    const tokens = int32(firstBytes.get('tokens.i32') as Buffer);
    const captionImage = int32(firstBytes.get('caption_image.i32') as Buffer);
    const vocab = Vocabulary.parse((firstBytes.get('vocab.txt') as Buffer).toString('utf8'), 'vocab.txt');
    const images = tsv(firstBytes.get('images.tsv') as Buffer).slice(1);
    const { captions: all } = await readCaptions(flickr8kDir());
    const chosen = new Set(images.map((r) => r[1]));
    const expected = all.filter((c) => chosen.has(c.image));
    expect(rows.length - 1).toBe(expected.length);
    expect(expected.length).toBe(LIMIT * 5);
    expect(offsets[0]).toBe(0);
    for (const [k, row] of rows.slice(1).entries()) {
      const c = expected[k] as (typeof expected)[number];
      expect(row).toEqual([String(k), String(captionImage[k]), String(c.n), c.text]);
      expect(images[captionImage[k] as number]?.[1]).toBe(c.image);
      const start = offsets[k] as number;
      const end = offsets[k + 1] as number;
      expect(end).toBeGreaterThanOrEqual(start);
      expect([...tokens.subarray(start, end)]).toEqual([...vocab.encode(tokenizeEnglish(c.text))]);
    }
    expect(tokens.every((id) => id >= 1 && id < vocab.size)).toBe(true);
    expect(captionImage.every((i) => i >= 0 && i < LIMIT)).toBe(true);
    expect(first.meta.skippedCaptions).toMatchObject({ image: BOGUS_CAPTION_IMAGE, captions: 5 });
    expect(firstLogs.filter((l) => l.includes(BOGUS_CAPTION_IMAGE))).toHaveLength(1);
    // The vocabulary comes from these images' train and val captions only.
    const trainVal = new Set(images.filter((r) => r[2] === 'train' || r[2] === 'val').map((r) => r[1]));
    const rebuilt = Vocabulary.build(
      expected.filter((c) => trainVal.has(c.image)).map((c) => tokenizeEnglish(c.text)),
      4,
    );
    expect(rebuilt.toText()).toBe((firstBytes.get('vocab.txt') as Buffer).toString('utf8'));
  });

  it("keeps each image's class probabilities beside meta.json, equal to the classifier's for the file", async () => {
    const rows = tsv(firstBytes.get('images.tsv') as Buffer).slice(1);
    const bytes = firstBytes.get(PROBS_FILE) as Buffer;
    expect(bytes.length).toBe(LIMIT * 1000 * 4);
    const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    const meta = JSON.parse((firstBytes.get(PROBS_META) as Buffer).toString('utf8'));
    expect(meta.metaSha256).toBe(
      createHash('sha256')
        .update(firstBytes.get('meta.json') as Buffer)
        .digest('hex'),
    );
    const extractor = await FneExtractor.open();
    try {
      const dir = flickr8kDir() as string;
      for await (const result of extractor.extract([join(dir, 'images', rows[5]?.[1] as string)])) {
        if (!result.ok) throw result.error;
        expect([...all.subarray(5 * 1000, 6 * 1000)]).toEqual([...imagenetClassProbs(result.features.probs)]);
      }
    } finally {
      await extractor.close();
    }
    // A split's rows, in its order; probabilities of another preparation are refused, naming the file.
    for (const split of ['test', 'val'] as const) {
      const loaded = await loadPreparedSplit(out, split).catch(() => undefined);
      if (!loaded) continue;
      const probs = await loadPreparedProbs(loaded);
      expect(probs).toHaveLength(loaded.images.length);
      const i = loaded.imageIndex[0] as number;
      expect([...(probs[0] as Float32Array)]).toEqual([...all.subarray(i * 1000, (i + 1) * 1000)]);
      await expect(loadPreparedProbs({ ...loaded, metaSha256: '0'.repeat(64) })).rejects.toThrow(
        new RegExp(`${PROBS_META}: belongs to another preparation`),
      );
    }
  });

  it('reruns from the cache without the CNN and writes the same bytes', async () => {
    const second = await prepare();
    expect(second.computed).toBe(0);
    expect(second.reused).toBe(LIMIT);
    const again = await readAll();
    for (const [file, bytes] of firstBytes) expect(again.get(file)?.equals(bytes), file).toBe(true);
    expect((await readdir(out)).sort()).toEqual(
      [...PREPARED_FILES, 'meta.json', PROBS_FILE, PROBS_META].sort(),
    );
  });

  it('recomputes a damaged cache entry (a run killed mid-write) and still writes the same bytes', async () => {
    const sha = tsv(firstBytes.get('images.tsv') as Buffer)[3]?.[3] as string;
    const cache = new FeatureCache(first.featureCacheDir, FNE_DIM, ONE_DIM);
    await truncate(cache.path(sha), 100);
    await writeFile(`${cache.path(sha)}.999.tmp`, 'left over by a killed run');
    const third = await prepare();
    expect(third.computed).toBe(1);
    expect(await cache.get(sha)).toBeDefined();
    const again = await readAll();
    for (const [file, bytes] of firstBytes) expect(again.get(file)?.equals(bytes), file).toBe(true);
  });

  it('ternarizes at other thresholds into a cache of their own, and meta.json says which', async () => {
    const other = join(root, 'out-t05');
    const thresholds = { negative: -0.5, positive: 0.5 };
    const report = await prepareFlickr8k({
      out: other,
      featureCacheRoot: join(root, 'features'),
      limitImages: 8,
      thresholds,
      log: () => {},
    });
    expect(report.computed).toBe(8);
    const meta = JSON.parse(await readFile(join(other, 'meta.json'), 'utf8'));
    expect(meta.thresholds).toEqual(thresholds);
    const features = await readdir(join(root, 'features'));
    expect(features.filter((d) => d.endsWith('-t-0.5_0.5'))).toHaveLength(1);
    const wide = await readFile(join(other, 'fne.i8'));
    const paper = firstBytes.get('fne.i8') as Buffer;
    // The same standardized values, cut further out: every ±1 at ±0.5 is the same ±1 at -0.25 / +0.15,
    // and some of the paper's ±1 are 0 now.
    let zeroed = 0;
    for (let i = 0; i < wide.length; i++) {
      const w = wide.readInt8(i);
      const p = paper.readInt8(i);
      if (w !== 0) expect(p).toBe(w);
      else if (p !== 0) zeroed++;
    }
    expect(zeroed).toBeGreaterThan(wide.length / 20);
    expect(
      (await readFile(join(other, 'one_layer.f32'))).equals(
        (firstBytes.get('one_layer.f32') as Buffer).subarray(0, 8 * ONE_DIM * 4),
      ),
    ).toBe(true);
    // The paper's cache is untouched: the default preparation still runs without the CNN.
    expect((await prepare()).computed).toBe(0);
  });
});
