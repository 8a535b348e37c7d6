import {
  chmodSync,
  copyFileSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IndexProgress } from '../src-main/contract/index.ts';
import { FneExtractor } from '../src-main/engine/fne/index.ts';
import { JointModel, jointModelsDir } from '../src-main/engine/joint/index.ts';
import { cosine, INDEX_FILE, IndexSaveError, Library } from '../src-main/engine/library/index.ts';
import { makePhotoFolder, tempDir } from './helpers/library-fixtures.ts';
import { skipNote } from './helpers/shared.ts';

const note = skipNote({ shared: true, cnn: true });

describe.skipIf(note !== '')(`library indexing${note}`, () => {
  let model: JointModel;
  let extractor: FneExtractor;
  let tmp: ReturnType<typeof tempDir>;

  beforeAll(async () => {
    model = await JointModel.open(join(jointModelsDir, 'fne'));
    extractor = await FneExtractor.open({ threads: 1 });
    tmp = tempDir('indexing');
  });
  afterAll(async () => {
    await model?.close();
    await extractor?.close();
    tmp?.cleanup();
  });

  const open = (dir: string, extra: Partial<Parameters<typeof Library.open>[0]> = {}) =>
    Library.open({ dir, model, extractor, workers: 2, batchSize: 4, ...extra });

  /** Each photo's own vector finds it first. */
  const selfFound = (lib: Library, ids: number[]) =>
    ids.filter((id) => lib.search.nearest(lib.search.get(id) as Float32Array, 1)[0]?.imageId === id).length;

  it('indexes a folder: each photo once, bad files recorded with their reason, hidden folders and loops skipped', async () => {
    const folder = await makePhotoFolder(join(tmp.dir, 'a'));
    const lib = await open(join(tmp.dir, 'a-lib'));
    try {
      const root = lib.roots.add(folder.root);
      expect(root).toMatchObject({ online: true, images: 0 });
      const events: IndexProgress[] = [];
      const result = await lib.indexer.run({ onProgress: (p) => events.push(p) });
      const files = folder.good.length + folder.bad.length;
      expect(result).toMatchObject({ state: 'done', total: files, done: files, failed: folder.bad.length });
      expect(events[0]?.state).toBe('walking');
      expect(events.some((e) => e.state === 'running' && e.done > 0 && e.imagesPerSecond > 0)).toBe(true);
      expect(lib.counts()).toEqual({
        total: files,
        indexed: folder.good.length,
        failed: folder.bad.length,
        pending: 0,
      });
      expect(lib.roots.list()).toEqual([{ ...root, images: files, failed: folder.bad.length }]);

      const ids = folder.good.map((path) => lib.catalog.imageByPath(path)?.id as number);
      expect(ids.every((id) => lib.catalog.image(id)?.status === 'indexed')).toBe(true);
      for (const bad of folder.bad) {
        expect(lib.catalog.imageByPath(bad.path)).toMatchObject({ status: 'failed' });
        expect(lib.catalog.imageByPath(bad.path)?.error).toContain(bad.reason);
        expect(lib.search.get(lib.catalog.imageByPath(bad.path)?.id as number)).toBeNull();
      }
      const paths = [...lib.catalog.allImages()].map((i) => i.path);
      expect(paths.sort()).toEqual([...folder.good, ...folder.bad.map((b) => b.path)].sort());
      expect(lib.search.size).toBe(folder.good.length);
      expect(selfFound(lib, ids)).toBe(ids.length);

      expect(lib.catalog.imageByPath(folder.withExif)).toMatchObject({
        camera: 'Canon EOS 5D',
        takenAt: '2018-04-03T10:11:12',
        type: 'jpeg',
      });
      expect(lib.catalog.imageByPath(folder.mislabelled)).toMatchObject({ type: 'png', status: 'indexed' });
      const japanese = lib.catalog.imageByPath(folder.japanese)?.id;
      expect(lib.catalog.keyword('犬', 10).map((k) => k.imageId)).toEqual([japanese]);
      expect(lib.catalog.keyword('公園', 10).map((k) => k.imageId)).toEqual([japanese]);
      const kyoto = lib.catalog.filterIds({ folder: join(folder.root, 'trip 2019', '京都') });
      expect(kyoto?.size).toBe(folder.good.filter((p) => p.includes('京都')).length);
      // The filter works inside the search: every hit allowed, as many as asked for.
      const q = lib.search.get(ids[0] as number) as Float32Array;
      const hits = lib.search.nearest(q, 2, (id) => kyoto?.has(id) ?? false);
      expect(hits).toHaveLength(2);
      expect(hits.every((h) => kyoto?.has(h.imageId))).toBe(true);
    } finally {
      await lib.close();
    }
  });

  it('re-indexes only what changed: touched files kept, replaced ones re-embedded, moves re-pathed, deletions removed', async () => {
    const folder = await makePhotoFolder(join(tmp.dir, 'b'));
    const dir = join(tmp.dir, 'b-lib');
    let lib = await open(dir);
    try {
      lib.roots.add(folder.root);
      await lib.indexer.run();
      expect(await lib.indexer.run()).toMatchObject({ state: 'done', total: 0 });

      const [touched, replaced, source, moved, deleted] = folder.good as [
        string,
        string,
        string,
        string,
        string,
      ];
      const id = (path: string) => lib.catalog.imageByPath(path)?.id as number;
      const [touchedId, replacedId, sourceId, movedId, deletedId] = [
        touched,
        replaced,
        source,
        moved,
        deleted,
      ].map(id) as [number, number, number, number, number];
      const touchedVector = lib.search.get(touchedId) as Float32Array;
      const movedVector = lib.search.get(movedId) as Float32Array;

      utimesSync(touched, new Date(), new Date(Date.now() + 5000));
      writeFileSync(replaced, await readFile(source));
      const movedTo = join(folder.root, 'trip 2019', '京都', 'renamed 移動.jpg');
      renameSync(moved, movedTo);
      rmSync(deleted);

      const result = await lib.indexer.run();
      // Only the replaced file is embedded again.
      expect(result).toMatchObject({ state: 'done', total: 1, done: 1, failed: 0 });
      expect(lib.catalog.image(touchedId)?.status).toBe('indexed');
      expect(lib.search.get(touchedId)).toEqual(touchedVector);
      expect(
        cosine(lib.search.get(replacedId) as Float32Array, lib.search.get(sourceId) as Float32Array),
      ).toBeGreaterThan(0.999);
      expect(lib.catalog.imageByPath(moved)).toBeNull();
      expect(lib.catalog.imageByPath(movedTo)?.id).toBe(movedId);
      expect(lib.search.get(movedId)).toEqual(movedVector);
      expect(lib.catalog.keyword('移動', 5).map((k) => k.imageId)).toEqual([movedId]);
      expect(lib.catalog.image(deletedId)).toBeNull();
      expect(
        lib.search.nearest(lib.search.get(sourceId) as Float32Array, 50).map((h) => h.imageId),
      ).not.toContain(deletedId);
      expect(lib.counts()).toMatchObject({ indexed: folder.good.length - 1, pending: 0 });
      await lib.close();

      // Reopened: the saved index is trusted and matches the catalog.
      lib = await open(dir);
      expect(lib.search.size).toBe(lib.counts().indexed);
      expect(selfFound(lib, [touchedId, movedId])).toBe(2);
      // The replaced file is a copy of another photo: its nearest neighbour is itself or that twin, a tie.
      const twin = lib.search.nearest(lib.search.get(replacedId) as Float32Array, 1)[0]?.imageId;
      expect([replacedId, sourceId]).toContain(twin);
    } finally {
      await lib.close();
    }
  });

  it('keeps the photos of a root that disappears (offline, unsearchable) and takes it back when it returns', async () => {
    const folder = await makePhotoFolder(join(tmp.dir, 'c'), 4);
    const lib = await open(join(tmp.dir, 'c-lib'));
    try {
      const { id: rootId } = lib.roots.add(folder.root);
      await lib.indexer.run();
      const counts = lib.counts();
      const anyId = lib.catalog.imageByPath(folder.good[0] as string)?.id as number;
      const q = lib.search.get(anyId) as Float32Array;

      const away = `${folder.root} (unplugged)`;
      renameSync(folder.root, away);
      expect(await lib.indexer.run()).toMatchObject({ state: 'done', total: 0 });
      expect(lib.roots.list()).toEqual([
        expect.objectContaining({ id: rootId, online: false, images: counts.total }),
      ]);
      expect(lib.counts()).toEqual(counts);
      expect(lib.catalog.image(anyId)?.status).toBe('indexed');
      expect(lib.search.nearest(q, 5)).toEqual([]);

      renameSync(away, folder.root);
      expect(await lib.indexer.run()).toMatchObject({ state: 'done', total: 0 });
      expect(lib.roots.list()[0]?.online).toBe(true);
      expect(lib.search.nearest(q, 1)[0]?.imageId).toBe(anyId);
    } finally {
      await lib.close();
    }
  });

  it('indexes a read-only root without writing into it', async () => {
    const folder = await makePhotoFolder(join(tmp.dir, 'd'), 3);
    // Node's recursive readdir follows the fixture's symlink loop forever: list without following links.
    const list = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? [e.name, ...list(join(dir, e.name)).map((n) => join(e.name, n))] : [e.name],
      );
    const listing = () => list(folder.root).sort();
    const before = listing();
    const dirs = [folder.root, join(folder.root, 'trip 2019'), join(folder.root, 'trip 2019', '京都')];
    for (const d of dirs) chmodSync(d, 0o555);
    const lib = await open(join(tmp.dir, 'd-lib'));
    try {
      lib.roots.add(folder.root);
      expect(await lib.indexer.run()).toMatchObject({ state: 'done', failed: folder.bad.length });
      expect(lib.counts().indexed).toBe(folder.good.length);
      expect(listing()).toEqual(before);
    } finally {
      await lib.close();
      for (const d of dirs) chmodSync(d, 0o755);
    }
  });

  it('handles files deleted or replaced while indexing runs, and pause/resume', async () => {
    const folder = await makePhotoFolder(join(tmp.dir, 'e'));
    const lib = await open(join(tmp.dir, 'e-lib'), { workers: 1, batchSize: 2 });
    try {
      lib.roots.add(folder.root);
      let changed: { deleted: string; replaced: string } | null = null;
      let pausedState: string | null = null;
      const run = lib.indexer.run({
        onProgress: (p) => {
          if (changed || p.state !== 'running' || p.done === 0) return;
          lib.indexer.pause();
          pausedState = lib.indexer.progress().state;
          // The two photos queued last have not been read yet.
          const pending = [...lib.catalog.allImages()].filter(
            (i) => i.status === 'pending' && !i.path.includes('.jp') === false,
          );
          const [replaced, deleted] = pending
            .filter((i) => folder.good.includes(i.path) && i.path !== folder.good[0])
            .slice(-2)
            .map((i) => i.path) as [string, string];
          changed = { deleted, replaced };
          rmSync(deleted);
          copyFileSync(folder.good[0] as string, replaced);
          setTimeout(() => lib.indexer.resume(), 300);
        },
      });
      const result = await run;
      expect(pausedState).toBe('paused');
      expect(result.state).toBe('done');
      const { deleted, replaced } = changed as unknown as { deleted: string; replaced: string };
      expect(lib.catalog.imageByPath(deleted)).toBeNull();
      const replacedId = lib.catalog.imageByPath(replaced)?.id as number;
      const originalId = lib.catalog.imageByPath(folder.good[0] as string)?.id as number;
      expect(lib.catalog.image(replacedId)?.status).toBe('indexed');
      expect(
        cosine(lib.search.get(replacedId) as Float32Array, lib.search.get(originalId) as Float32Array),
      ).toBeGreaterThan(0.999);
      expect(lib.counts()).toMatchObject({
        indexed: folder.good.length - 1,
        failed: folder.bad.length,
        pending: 0,
      });
      expect(lib.search.size).toBe(folder.good.length - 1);
    } finally {
      await lib.close();
    }
  });

  it('cancels a run and finishes it next time without duplicates', async () => {
    const folder = await makePhotoFolder(join(tmp.dir, 'f'));
    const lib = await open(join(tmp.dir, 'f-lib'), { workers: 1, batchSize: 2 });
    try {
      lib.roots.add(folder.root);
      const first = await lib.indexer.run({
        onProgress: (p) => p.state === 'running' && p.done > 0 && lib.indexer.cancel(),
      });
      expect(first.state).toBe('cancelled');
      expect(lib.counts().pending).toBeGreaterThan(0);
      const second = await lib.indexer.run();
      expect(second.state).toBe('done');
      expect(second.total).toBe(lib.counts().total - first.done);
      expect(lib.counts()).toMatchObject({
        indexed: folder.good.length,
        failed: folder.bad.length,
        pending: 0,
      });
      expect(lib.search.size).toBe(folder.good.length);
    } finally {
      await lib.close();
    }
  });

  it('rebuilds a missing or corrupt index from the catalog, and survives a full disk at close', async () => {
    const folder = await makePhotoFolder(join(tmp.dir, 'g'), 4);
    const dir = join(tmp.dir, 'g-lib');
    let lib = await open(dir);
    lib.roots.add(folder.root);
    await lib.indexer.run();
    const ids = folder.good.map((p) => lib.catalog.imageByPath(p)?.id as number);
    await lib.close();

    writeFileSync(join(dir, INDEX_FILE), 'garbage, not an HNSW graph');
    lib = await open(dir);
    expect(lib.search.size).toBe(ids.length);
    expect(selfFound(lib, ids)).toBe(ids.length);
    await lib.close();

    rmSync(join(dir, INDEX_FILE));
    lib = await open(dir);
    expect(lib.search.size).toBe(ids.length);
    await lib.close();
    const saved = await readFile(join(dir, INDEX_FILE));

    // A full disk when indexing ends and again at close: reported both times, the old file untouched, the
    // catalog complete, the lock released; the next open replays the vector the file lacks.
    lib = await open(dir);
    const extra = join(folder.root, 'extra.jpg');
    copyFileSync(folder.good[0] as string, extra);
    symlinkSync('/dev/full', join(dir, `${INDEX_FILE}.tmp`));
    await expect(lib.indexer.run()).rejects.toThrow(IndexSaveError);
    expect(lib.counts().indexed).toBe(ids.length + 1);
    symlinkSync('/dev/full', join(dir, `${INDEX_FILE}.tmp`));
    await expect(lib.close()).rejects.toThrow(/previous file is intact/);
    expect((await readFile(join(dir, INDEX_FILE))).equals(saved)).toBe(true);
    lib = await open(dir);
    expect(lib.counts().indexed).toBe(ids.length + 1);
    expect(lib.search.size).toBe(ids.length + 1);
    const extraId = lib.catalog.imageByPath(extra)?.id as number;
    expect(selfFound(lib, [...ids, extraId])).toBeGreaterThanOrEqual(ids.length);
    await lib.close();
  });
});
