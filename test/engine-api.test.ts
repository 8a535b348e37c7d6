import { execFileSync, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, type EngineHost, openEngineWorker } from '../src-main/engine/api/index.ts';
import { SagasuError } from '../src-main/engine/errors.ts';
import { projectRoot } from '../src-main/engine/paths.ts';
import { shared, skipNote } from './helpers/shared.ts';

const note = skipNote({ shared: true, cnn: true });
const flickr = shared ? join(shared, 'data', 'flickr8k') : '';

/**
 * A small library made of Flickr8k test photos whose five human captions settle what they show: photos of dogs
 * on a beach, and photos with neither a dog nor water in any caption.
 */
function pickPhotos(): { beachDogs: string[]; others: string[]; captions: Map<string, string[]> } {
  const test = new Set(readFileSync(join(flickr, 'Flickr_8k.testImages.txt'), 'utf8').split(/\s+/));
  const captions = new Map<string, string[]>();
  for (const line of readFileSync(join(flickr, 'Flickr8k.token.txt'), 'utf8').split('\n')) {
    const [key, text] = line.split('\t');
    const image = key?.split('#')[0];
    if (!image || !text || !test.has(image)) continue;
    captions.set(image, [...(captions.get(image) ?? []), text.toLowerCase()]);
  }
  const count = (image: string, words: RegExp) =>
    (captions.get(image) ?? []).filter((c) => words.test(c)).length;
  const sorted = [...captions.keys()].sort();
  const beachDogs = sorted
    .filter((i) => count(i, /\bdogs?\b/) >= 4 && count(i, /\b(beach|sand|ocean|surf|shore)\b/) >= 3)
    .slice(0, 6);
  const others = sorted
    .filter(
      (i) =>
        count(i, /\b(dogs?|pupp(y|ies))\b/) === 0 && count(i, /\b(beach|sand|ocean|water|surf|sea)\b/) === 0,
    )
    .slice(0, 34);
  return { beachDogs, others, captions };
}

describe.skipIf(note)(`engine api: a real library of Flickr8k photos${note}`, () => {
  let work: string;
  let photos: string;
  let libraryDir: string;
  let engine: Engine;
  let picked: ReturnType<typeof pickPhotos>;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'sagasu-engine-'));
    photos = join(work, 'photos');
    libraryDir = join(work, 'library');
    mkdirSync(join(photos, 'beach'), { recursive: true });
    mkdirSync(join(photos, 'other'), { recursive: true });
    picked = pickPhotos();
    for (const f of picked.beachDogs) copyFileSync(join(flickr, 'images', f), join(photos, 'beach', f));
    for (const f of picked.others) copyFileSync(join(flickr, 'images', f), join(photos, 'other', f));
    engine = await Engine.open({ libraryDir });
    const root = await engine.invoke('roots.add', { path: photos });
    expect(root.path).toBe(photos);
    await engine.invoke('index.start', {});
    const done = await engine.whenIdle();
    expect(done.state).toBe('done');
  }, 180_000);

  afterAll(async () => {
    await engine?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** The id of a library photo, found the way a person would: by the file itself. */
  const idOf = async (file: string): Promise<number> => {
    const folder = picked.beachDogs.includes(file) ? 'beach' : 'other';
    const page = await engine.invoke('similar', { path: join(photos, folder, file), k: 1 });
    const hit = page.hits[0];
    if (!hit?.path.endsWith(file)) throw new Error(`${file} is not its own nearest photo`);
    return hit.imageId;
  };

  it('indexes every photo once and reports them', async () => {
    const status = await engine.invoke('status', {});
    expect(status.images.indexed).toBe(picked.beachDogs.length + picked.others.length);
    expect(status.images.failed).toBe(0);
    expect(status.roots).toHaveLength(1);
    expect(status.index.state).toBe('done');
  });

  it('"a dog runs on the beach" puts beach dogs first', async () => {
    const page = await engine.invoke('search', { query: 'a dog runs on the beach', cutoff: null, k: 5 });
    const top3 = page.hits.slice(0, 3).map((h) => h.path.split('/').at(-2));
    expect(top3.filter((folder) => folder === 'beach').length).toBeGreaterThanOrEqual(2);
    expect(page.hits.map((h) => h.score)).toEqual([...page.hits.map((h) => h.score)].sort((a, b) => b - a));
    expect(page.total).toBe(picked.beachDogs.length + picked.others.length);
  });

  it('pages through the same ranking', async () => {
    const all = await engine.invoke('search', { query: 'people in a city street', cutoff: null, k: 40 });
    const second = await engine.invoke('search', {
      query: 'people in a city street',
      cutoff: null,
      k: 10,
      offset: 10,
    });
    expect(second.hits.map((h) => h.imageId)).toEqual(all.hits.slice(10, 20).map((h) => h.imageId));
  });

  it('filters by folder and file type inside the search', async () => {
    const page = await engine.invoke('search', {
      query: 'a dog runs on the beach',
      cutoff: null,
      filters: { folder: join(photos, 'other') },
    });
    expect(page.hits.length).toBe(picked.others.length);
    expect(page.hits.every((h) => h.path.startsWith(join(photos, 'other')))).toBe(true);
    const none = await engine.invoke('search', { query: 'a dog', cutoff: null, filters: { types: ['png'] } });
    expect(none.hits).toEqual([]);
  });

  it('a filter sees photos indexed after it was first used, and not those removed', async () => {
    const filters = { folder: join(photos, 'other') };
    const inOther = async () =>
      (await engine.invoke('search', { query: 'a dog', cutoff: null, k: 100, filters })).hits.map((h) =>
        h.path.split('/').at(-1),
      );
    expect(await inOther()).toHaveLength(picked.others.length);
    const extra = picked.beachDogs[0] as string;
    copyFileSync(join(flickr, 'images', extra), join(photos, 'other', extra));
    try {
      await engine.invoke('index.start', {});
      await engine.whenIdle();
      expect(await inOther()).toContain(extra);
    } finally {
      rmSync(join(photos, 'other', extra));
      await engine.invoke('index.start', {});
      await engine.whenIdle();
    }
    const after = await inOther();
    expect(after).toHaveLength(picked.others.length);
    expect(after).not.toContain(extra);
  });

  it('the calibrated cutoff keeps an absent subject to few photos', async () => {
    const giraffe = await engine.invoke('search', { query: 'a giraffe' });
    const dogs = await engine.invoke('search', { query: 'a dog runs on the beach' });
    expect(giraffe.cutoff).not.toBeNull();
    expect(giraffe.hits.length).toBeLessThan(dogs.hits.length);
    expect(giraffe.hits.length).toBeLessThanOrEqual(4);
  });

  it('finds similar photos by an indexed photo and by an outside file, never the photo itself', async () => {
    const first = picked.beachDogs[0] as string;
    const id = await idOf(first);
    const byId = await engine.invoke('similar', { imageId: id, k: 3 });
    expect(byId.hits.map((h) => h.imageId)).not.toContain(id);
    expect(byId.hits.filter((h) => h.path.includes('/beach/')).length).toBeGreaterThanOrEqual(1);
    // Pages of one ranking over the whole library but the photo itself.
    expect(byId.total).toBe(picked.beachDogs.length + picked.others.length - 1);
    const ten = await engine.invoke('similar', { imageId: id, k: 10 });
    const second = await engine.invoke('similar', { imageId: id, k: 5, offset: 5 });
    expect(second.hits.map((h) => h.imageId)).toEqual(ten.hits.slice(5).map((h) => h.imageId));
    const outside = join(work, 'outside.jpg');
    copyFileSync(join(flickr, 'images', picked.beachDogs[1] as string), outside);
    const byFile = await engine.invoke('similar', { path: outside, k: 1 });
    expect(byFile.hits[0]?.path.endsWith(picked.beachDogs[1] as string)).toBe(true);
    expect(byFile.hits[0]?.score).toBeGreaterThan(0.95);
  });

  it('describes a photo with five scored captions and tags, stored for review', async () => {
    const id = await idOf(picked.beachDogs[0] as string);
    const { captions, tags } = await engine.invoke('image.describe', { imageId: id });
    expect(captions).toHaveLength(5);
    expect(captions.every((c) => c.source === 'auto' && c.status === 'proposed' && c.score !== null)).toBe(
      true,
    );
    expect(tags.map((t) => t.text)).toContain('dog');
    // The classifier's concepts join the caption words: a dog photo is also a mammal.
    expect(tags.map((t) => t.text)).toContain('mammal');
    const again = await engine.invoke('image.get', { imageId: id });
    expect(again.captions.map((c) => c.id)).toEqual(captions.map((c) => c.id));
  });

  it('explains a match: the layer contributions add up to the score', async () => {
    // A photo no caption, tag or file name links to the query, so its score is the vector's alone.
    const id = await idOf(picked.others[0] as string);
    const query = 'two people walk in a park';
    const why = await engine.invoke('image.explain', { imageId: id, query });
    const sum = why.layers.reduce((s, l) => s + l.contribution, 0);
    expect(sum).toBeCloseTo(why.score, 4);
    expect(why.blocks.reduce((s, b) => s + b.contribution, 0)).toBeCloseTo(why.score, 4);
    const hit = (await engine.invoke('search', { query, cutoff: null, k: 40 })).hits.find(
      (h) => h.imageId === id,
    );
    // The index stores a compact copy of the vector; the explanation recomputes it from the photo.
    expect(hit?.via).toBe('vector');
    expect(Math.abs((hit?.score ?? 0) - why.score)).toBeLessThan(0.02);
  });

  it.skipIf(!existsSync('/usr/bin/exiftool'))(
    'accepted tags and a user caption reach the XMP sidecar; the photo is untouched',
    async () => {
      const file = picked.beachDogs[2] as string;
      const photo = join(photos, 'beach', file);
      const before = readFileSync(photo);
      const id = await idOf(file);
      const { tags } = await engine.invoke('image.describe', { imageId: id });
      const dog = tags.find((t) => t.text === 'dog');
      expect(dog).toBeDefined();
      await engine.invoke('tag.review', { imageId: id, tagId: dog?.id as number, status: 'accepted' });
      await engine.invoke('tag.add', { imageId: id, text: '浜辺' });
      await engine.invoke('caption.add', { imageId: id, text: 'Our dog on the beach at Kamakura' });
      const result = await engine.invoke('xmp.write', { imageIds: [id] });
      expect(result.failed).toEqual([]);
      const sidecar = `${photo}.xmp`;
      expect(result.written).toEqual([sidecar]);
      const [meta] = JSON.parse(
        execFileSync('exiftool', ['-j', '-XMP-dc:all', sidecar], { encoding: 'utf8' }),
      );
      expect([meta.Subject].flat()).toEqual(expect.arrayContaining(['dog', '浜辺']));
      // "dog" names a WordNet concept, so Lightroom gets its hierarchy too; the user's 浜辺 has none.
      const [lr] = JSON.parse(
        execFileSync('exiftool', ['-j', '-XMP-lr:HierarchicalSubject', sidecar], { encoding: 'utf8' }),
      );
      expect([lr.HierarchicalSubject].flat()).toEqual([expect.stringMatching(/^animal\|.*\|mammal\|dog$/)]);
      expect(meta.Description).toBe('Our dog on the beach at Kamakura');
      expect(readFileSync(photo).equals(before)).toBe(true);
      const csv = await engine.invoke('export', { format: 'csv' });
      expect(csv.text).toContain(file);
      expect(csv.text).toContain('浜辺');
    },
  );

  it('answers sentences without meaning with an empty page and a note, never a crash', async () => {
    for (const query of ['', '   ', '?!…', '。、']) {
      const page = await engine.invoke('search', { query });
      expect(page.hits).toEqual([]);
      expect(page.note).toMatch(/sentence/i);
    }
    const unknown = await engine.invoke('search', { query: 'qzxv blorptangle', cutoff: null });
    expect(unknown.unknownWords).toEqual(['qzxv', 'blorptangle']);
    expect(unknown.note).toMatch(/none of the words/i);
    const long = await engine.invoke('search', {
      query: 'a dog on the beach '.repeat(526).slice(0, 10_000),
      k: 3,
    });
    expect(long.hits.length).toBeLessThanOrEqual(3);
  });

  it('refuses bad arguments with the field named', async () => {
    const refused = async (call: () => Promise<unknown>, subject: RegExp) => {
      const error = await call().then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(SagasuError);
      expect((error as SagasuError).subject).toMatch(subject);
    };
    await refused(() => engine.invoke('search', { query: 'x'.repeat(10_001) }), /^search\.query$/);
    await refused(() => engine.invoke('search', { query: 'dog', k: 0 }), /^search\.k$/);
    await refused(
      () => engine.invoke('search', { query: 'dog', filters: { from: '27/11/2026' } }),
      /filters\.from/,
    );
    await refused(() => engine.invoke('similar', { imageId: 1, path: '/x.jpg' }), /^similar$/);
    await refused(() => engine.invoke('image.get', { imageId: 999_999 }), /image 999999/);
    await refused(() => engine.invoke('image.get', { imageId: 'one' as unknown as number }), /imageId/);
    await refused(() => engine.invoke('similar', { path: join(work, 'missing.jpg') }), /missing\.jpg/);
  });

  it('refuses a second Sagasu on the same library with a clear message', async () => {
    const error = await Engine.open({ libraryDir }).then(
      async (e) => {
        await e.close();
        return null;
      },
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SagasuError);
    expect((error as SagasuError).code).toBe('library-locked');
  });

  it('the CLI prints results, and one line with exit code 1 for a bad argument', () => {
    // The library is held by this test's engine; the CLI gets its own copy of nothing: a fresh library dir.
    const cli = (args: string[]) =>
      spawnSync(process.execPath, [join(projectRoot, 'bin', 'sagasu.js'), ...args], {
        encoding: 'utf8',
        cwd: work,
      });
    const bad = cli(['search', 'a dog', '--library', join(work, 'cli-lib'), '-k', 'many']);
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/-k/);
    writeFileSync(join(work, 'not-a-photo.jpg'), 'hello');
    const caption = cli(['caption', join(work, 'not-a-photo.jpg'), '--library', join(work, 'cli-lib')]);
    expect(caption.status).toBe(1);
    expect(caption.stderr).toMatch(/not-a-photo\.jpg/);
  }, 60_000);
});

describe.skipIf(note)(`engine in a worker thread${note}`, () => {
  let work: string;
  let host: EngineHost;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'sagasu-worker-'));
    mkdirSync(join(work, 'photos'));
    for (const f of ['1000268201_693b08cb0e.jpg', '1001773457_577c3a7d70.jpg', '1002674143_1b742ab4b8.jpg'])
      copyFileSync(join(flickr, 'images', f), join(work, 'photos', f));
    host = await openEngineWorker({ libraryDir: join(work, 'library') });
  }, 60_000);

  afterAll(async () => {
    await host?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('indexes, streams progress, searches and serves thumbnails like the in-process engine', async () => {
    const states: string[] = [];
    const off = host.on('index.progress', (p) => states.push(p.state));
    await host.invoke('roots.add', { path: join(work, 'photos') });
    await host.invoke('index.start', {});
    const done = await host.whenIdle();
    off();
    expect(done.state).toBe('done');
    expect(done.done).toBe(3);
    expect(states).toContain('done');
    const page = await host.invoke('search', { query: 'a child in a pink dress', cutoff: null, k: 3 });
    expect(page.hits).toHaveLength(3);
    const thumb = await host.media(page.hits[0]?.imageId as number, 'thumb', 128);
    expect(thumb.type).toBe('image/jpeg');
    expect(thumb.bytes.subarray(0, 2).toString('hex')).toBe('ffd8');
  });

  it('carries typed errors across the thread', async () => {
    const error = await host.invoke('image.get', { imageId: 424242 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SagasuError);
    expect((error as SagasuError).code).toBe('not-found');
    const media = await host.media(424242, 'full').catch((e: unknown) => e);
    expect((media as SagasuError).code).toBe('not-found');
  });
});

describe.skipIf(note)(`the engine keeps the catalog current while it runs${note}`, () => {
  it('a photo copied into a root is indexed and announced without asking', async () => {
    const work = mkdtempSync(join(tmpdir(), 'sagasu-watch-'));
    const files = ['1000268201_693b08cb0e.jpg', '1001773457_577c3a7d70.jpg', '1002674143_1b742ab4b8.jpg'];
    mkdirSync(join(work, 'photos'));
    for (const f of files.slice(0, 2)) copyFileSync(join(flickr, 'images', f), join(work, 'photos', f));
    const engine = await Engine.open({ libraryDir: join(work, 'library'), watch: true });
    try {
      await engine.invoke('roots.add', { path: join(work, 'photos') });
      await engine.invoke('index.start', {});
      await engine.whenIdle();
      const changed = new Promise<number[] | null>((resolve) =>
        engine.on('library.changed', ({ imageIds }) => resolve(imageIds)),
      );
      copyFileSync(join(flickr, 'images', files[2] as string), join(work, 'photos', files[2] as string));
      const ids = await changed;
      expect(ids).toHaveLength(1);
      expect((await engine.invoke('status', {})).images.indexed).toBe(3);
      const found = await engine.invoke('similar', { path: join(work, 'photos', files[2] as string), k: 1 });
      expect(found.hits[0]?.imageId).toBe(ids?.[0]);
    } finally {
      await engine.close();
      rmSync(work, { recursive: true, force: true });
    }
  }, 60_000);
});
