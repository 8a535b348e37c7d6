import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArgumentError } from '../src-main/engine/errors.ts';
import { ftsQuery } from '../src-main/engine/library/catalog.ts';
import { Catalog, cosine, dequantize, quantize } from '../src-main/engine/library/index.ts';
import { tempDir } from './helpers/library-fixtures.ts';
import { unitVector as unit } from './helpers/library-vectors.ts';

const MODEL = 'test@0';

describe('library catalog (SQLite)', () => {
  let tmp: ReturnType<typeof tempDir>;
  let catalog: Catalog;
  let root: string;
  let rootId: number;

  beforeEach(() => {
    tmp = tempDir('catalog');
    root = join(tmp.dir, 'photos');
    mkdirSync(root);
    catalog = new Catalog(join(tmp.dir, 'catalog.db'));
    rootId = catalog.insertRoot(root);
  });
  afterEach(() => {
    catalog.close();
    tmp.cleanup();
  });

  const add = (rel: string, mtimeMs = Date.UTC(2020, 0, 1)) =>
    catalog.insertPending(rootId, root, join(root, rel), 1000, mtimeMs);

  it('runs its migrations once, in WAL mode with foreign keys on', () => {
    expect(catalog.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(catalog.db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(catalog.db.pragma('user_version', { simple: true })).toBeGreaterThanOrEqual(1);
    catalog.close();
    // Reopening an up-to-date catalog keeps its rows.
    catalog = new Catalog(join(tmp.dir, 'catalog.db'));
    expect(catalog.rootRows()).toEqual([{ id: rootId, path: root }]);
  });

  it('refuses a catalog from a newer schema with a clear error', () => {
    catalog.db.pragma('user_version = 999');
    catalog.close();
    expect(() => new Catalog(join(tmp.dir, 'catalog.db'))).toThrow(
      /schema version 999, newer than this Sagasu/,
    );
    catalog = new Catalog(join(tmp.dir, 'other.db'));
  });

  it('logs every vector change, deletes by cascade included, for the index to replay', () => {
    const a = add('a.jpg');
    const b = add('b.jpg');
    const start = catalog.lastVectorSeq();
    const { q, scale } = quantize(unit(16, 1));
    const image = {
      bytes: 1,
      mtimeMs: 1,
      hash: 'h',
      width: 1,
      height: 1,
      takenAt: null,
      camera: null,
      type: null,
    };
    catalog.setIndexed(a, { ...image, hash: 'ha' }, MODEL, q, scale);
    catalog.setIndexed(b, { ...image, hash: 'hb' }, MODEL, q, scale);
    expect(catalog.vectorCount(MODEL)).toBe(2);
    expect(catalog.vectorChangesSince(start).sort()).toEqual([a, b].sort());
    const mid = catalog.lastVectorSeq();
    catalog.deleteRoot(rootId);
    expect(catalog.vectorCount(MODEL)).toBe(0);
    expect(catalog.vectorChangesSince(mid).sort()).toEqual([a, b].sort());
    catalog.pruneVectorLog(catalog.lastVectorSeq());
    expect(catalog.vectorChangesSince(0)).toEqual([]);
  });

  it('reads a page of photos in one query, the same records as one by one, and leaves out ids it lacks', () => {
    const ids = ['a.jpg', 'b.jpg', 'c.jpg'].map((rel) => add(rel));
    const page = catalog.images([ids[2] as number, 9999, ids[0] as number]);
    expect([...page.keys()].sort()).toEqual([ids[0], ids[2]].sort());
    for (const id of [ids[0], ids[2]] as number[]) expect(page.get(id)).toEqual(catalog.image(id));
    expect(catalog.images([]).size).toBe(0);
  });

  it('counts indexed, failed and pending, and re-queues photos embedded by another model version', () => {
    const a = add('a.jpg');
    const b = add('b.jpg');
    add('c.jpg');
    const { q, scale } = quantize(unit(16, 2));
    const image = {
      bytes: 1,
      mtimeMs: 1,
      hash: 'h',
      width: 1,
      height: 1,
      takenAt: null,
      camera: null,
      type: null,
    };
    catalog.setIndexed(a, image, MODEL, q, scale);
    catalog.setFailed(b, 'corrupt: damaged', null);
    expect(catalog.counts(MODEL)).toEqual({ total: 3, indexed: 1, failed: 1, pending: 1 });
    expect(catalog.counts('other@1')).toEqual({ total: 3, indexed: 0, failed: 1, pending: 2 });
    expect(catalog.requeueOtherModels('other@1')).toBe(1);
    expect(catalog.image(a)?.status).toBe('pending');
    expect(catalog.image(b)).toMatchObject({ status: 'failed', error: 'corrupt: damaged' });
  });

  it('finds photos by file and folder names, Japanese included, and by tags', () => {
    const dog = add('夏休み/犬と公園.jpg');
    const beach = add('trip 2019/beach_day-4.JPG');
    const other = add('IMG_0001.jpg');
    expect(catalog.keyword('犬', 10).map((h) => h.imageId)).toEqual([dog]);
    expect(catalog.keyword('公園', 10).map((h) => h.imageId)).toEqual([dog]);
    expect(catalog.keyword('夏休み', 10).map((h) => h.imageId)).toEqual([dog]);
    expect(catalog.keyword('beach', 10).map((h) => h.imageId)).toEqual([beach]);
    expect(catalog.keyword('tri', 10).map((h) => h.imageId)).toEqual([beach]);
    expect(catalog.keyword('a dog on the BEACH', 10).map((h) => h.imageId)).toEqual([beach]);
    expect(catalog.keyword('"); DROP TABLE images; --', 10)).toEqual([]);
    expect(catalog.keyword('sunset', 10)).toEqual([]);
    const tag = catalog.addTag(other, 'sunset');
    expect(catalog.keyword('sunset', 10).map((h) => h.imageId)).toEqual([other]);
    catalog.reviewTag(other, tag.id, 'rejected');
    expect(catalog.keyword('sunset', 10)).toEqual([]);
    // A name match outranks a weaker one: both words match the first.
    const both = add('sunset beach.jpg');
    expect(catalog.keyword('sunset beach', 10)[0]?.imageId).toBe(both);
    expect(ftsQuery('   ')).toBeNull();
    // A one-letter word is no prefix of everything: "a" does not find "another beach trip.jpg" by its "a".
    add('another.jpg');
    expect(catalog.keyword('a', 10)).toEqual([]);
    expect(ftsQuery('a I 7')).toBeNull();
  });

  it('stores auto captions and tags, keeps reviewed ones across refreshes, one accepted caption', () => {
    const id = add('a.jpg');
    catalog.setAutoDescriptions(
      id,
      [
        { text: 'a dog runs', score: 0.5 },
        { text: 'a cat sleeps', score: 0.3 },
      ],
      [{ text: 'dog', confidence: 0.9 }],
    );
    let d = catalog.descriptions(id);
    expect(d.captions.map((c) => [c.text, c.source, c.status])).toEqual([
      ['a dog runs', 'auto', 'proposed'],
      ['a cat sleeps', 'auto', 'proposed'],
    ]);
    const dogCaption = d.captions[0]?.id as number;
    const dogTag = d.tags[0]?.id as number;
    expect(catalog.reviewCaption(id, dogCaption, 'accepted').status).toBe('accepted');
    expect(catalog.reviewTag(id, dogTag, 'rejected').status).toBe('rejected');
    // A refresh replaces proposed auto ones, keeps the reviewed.
    catalog.setAutoDescriptions(
      id,
      [{ text: 'a bird flies', score: 0.4 }],
      [{ text: 'bird', confidence: 0.7 }],
    );
    d = catalog.descriptions(id);
    expect(d.captions.map((c) => [c.text, c.status])).toEqual([
      ['a dog runs', 'accepted'],
      ['a bird flies', 'proposed'],
    ]);
    expect(d.tags.map((t) => [t.text, t.status])).toEqual([
      ['bird', 'proposed'],
      ['dog', 'rejected'],
    ]);
    // The person's caption replaces the accepted one.
    const mine = catalog.addCaption(id, '  My dog Pochi  ');
    expect(mine).toMatchObject({ text: 'My dog Pochi', source: 'user', status: 'accepted', score: null });
    d = catalog.descriptions(id);
    expect(d.captions.filter((c) => c.status === 'accepted').map((c) => c.text)).toEqual(['My dog Pochi']);
    expect(catalog.addTag(id, 'pochi')).toMatchObject({
      source: 'user',
      status: 'accepted',
      confidence: null,
    });
    expect(() => catalog.reviewCaption(id, 9999, 'accepted')).toThrow(ArgumentError);
    expect(() => catalog.addTag(9999, 'x')).toThrow(/image 9999 is not in the library/);
  });

  it('filters by root, folder, date taken (EXIF, else mtime) and type', () => {
    const a = add('2019/a.jpg', Date.UTC(2019, 5, 15, 12));
    const b = add('2019/sub/b.png', Date.UTC(2019, 6, 1, 12));
    const c = add('2020/c.jpg', Date.UTC(2020, 0, 1, 12));
    const { q, scale } = quantize(unit(16, 3));
    catalog.setIndexed(
      c,
      {
        bytes: 1,
        mtimeMs: Date.UTC(2020, 0, 1, 12),
        hash: 'h',
        width: 1,
        height: 1,
        takenAt: '2015-08-09T10:00:00',
        camera: 'X',
        type: 'jpeg',
      },
      MODEL,
      q,
      scale,
    );
    const ids = (f: Parameters<Catalog['filterIds']>[0]) => [...(catalog.filterIds(f) ?? [])].sort();
    expect(catalog.filterIds({})).toBeNull();
    expect(ids({ rootId })).toEqual([a, b, c].sort());
    expect(ids({ folder: join(root, '2019') })).toEqual([a, b].sort());
    expect(ids({ folder: `${join(root, '2019')}/` })).toEqual([a, b].sort());
    expect(ids({ folder: join(root, '201') })).toEqual([]);
    expect(ids({ from: '2019-06-01', to: '2019-06-30' })).toEqual([a]);
    expect(ids({ to: '2016-01-01' })).toEqual([c]);
    expect(ids({ types: ['png'] })).toEqual([b]);
    expect(ids({ types: ['jpeg'], folder: join(root, '2019') })).toEqual([a]);
  });

  it('filters by a folder whose name is not ASCII (emoji, kana) like any other', () => {
    const trip = add('📷trip/a.jpg');
    const deeper = add('📷trip/京都 🍁/b.jpg');
    const other = add('📷tripx/c.jpg');
    const ids = (folder: string) => [...(catalog.filterIds({ folder }) ?? [])].sort();
    expect(ids(join(root, '📷trip'))).toEqual([trip, deeper].sort());
    expect(ids(join(root, '📷trip', '京都 🍁'))).toEqual([deeper]);
    expect(ids(join(root, '📷tripx'))).toEqual([other]);
    expect(ids(join(root, '📷'))).toEqual([]);
  });
});

describe('compact vectors (int8 with a per-vector scale)', () => {
  it('costs under 0.1 % of cosine on unit vectors and keeps them unit length', () => {
    let worst = 1;
    for (let seed = 1; seed <= 200; seed++) {
      const v = unit(512, seed);
      const { q, scale } = quantize(v);
      expect(q.length).toBe(512);
      const back = dequantize(q, scale);
      worst = Math.min(worst, cosine(v, back));
      expect(Math.abs(cosine(back, back) - 1)).toBeLessThan(1e-5);
    }
    expect(worst).toBeGreaterThan(0.999);
  });
});
