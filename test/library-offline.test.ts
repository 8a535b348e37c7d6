import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FneExtractor } from '../src-main/engine/fne/index.ts';
import { JointModel, jointModelsDir } from '../src-main/engine/joint/index.ts';
import { Library } from '../src-main/engine/library/index.ts';
import { flickrPhotos, tempDir } from './helpers/library-fixtures.ts';
import { skipNote } from './helpers/shared.ts';

const note = skipNote({ shared: true, cnn: true });

/** '' when this process may mount a tmpfs (root with CAP_SYS_ADMIN), else why the mount test is skipped. */
function mountNote(): string {
  if (process.platform !== 'linux' || process.getuid?.() !== 0)
    return ' [skipped: mounting a tmpfs needs root on Linux]';
  const probe = mkdtempSync(join(tmpdir(), 'sagasu-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return '';
  } catch {
    return ' [skipped: mount -t tmpfs is refused here (no CAP_SYS_ADMIN)]';
  } finally {
    rmdirSync(probe);
  }
}

describe.skipIf(note !== '')(
  `library: a folder that looks unmounted goes offline, nothing removed${note}`,
  () => {
    let model: JointModel;
    let extractor: FneExtractor;
    let tmp: ReturnType<typeof tempDir>;
    beforeAll(async () => {
      model = await JointModel.open(join(jointModelsDir, 'fne'));
      extractor = await FneExtractor.open({ threads: 1 });
      tmp = tempDir('offline');
    });
    afterAll(async () => {
      await model?.close();
      await extractor?.close();
      tmp?.cleanup();
    });
    const open = (dir: string) => Library.open({ dir, model, extractor, workers: 2, batchSize: 4 });

    const mounts = mountNote();
    it.skipIf(mounts !== '')(
      `a disk unmounted under its folder, then another disk mounted there: held offline with the tags and captions; the disk back: online again${mounts}`,
      async () => {
        // The disk is a tmpfs at `disk`, mounted on the library folder `mnt` by a bind mount, so it can be unmounted
        // from `mnt` (leaving the empty mount point, as fstab and NAS mounts do) and mounted back with its files.
        const disk = join(tmp.dir, 'disk');
        const other = join(tmp.dir, 'other-disk');
        const mnt = join(tmp.dir, 'mnt');
        for (const d of [disk, other, mnt]) mkdirSync(d);
        const mounted: string[] = [];
        const mount = (args: string[], dir: string) => {
          execFileSync('mount', [...args, dir]);
          mounted.push(dir);
        };
        const umount = (dir: string) => {
          execFileSync('umount', [dir]);
          mounted.splice(mounted.lastIndexOf(dir), 1);
        };
        let lib: Library | undefined;
        try {
          mount(['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs'], disk);
          const photos = flickrPhotos(3).map((src) => {
            copyFileSync(src, join(disk, basename(src)));
            return join(mnt, basename(src));
          });
          mount(['--bind', disk], mnt);

          lib = await open(join(tmp.dir, 'lib'));
          const { id: rootId } = lib.roots.add(mnt);
          expect(await lib.indexer.run()).toMatchObject({ state: 'done', total: 3, failed: 0 });
          const imageId = lib.catalog.imageByPath(photos[0] as string)?.id as number;
          const q = lib.search.get(imageId) as Float32Array;
          lib.catalog.addTag(imageId, 'holiday');
          lib.catalog.addCaption(imageId, 'a dog on the grass');
          const counts = lib.counts();
          const described = lib.catalog.descriptions(imageId);
          expect(described.tags.map((t) => t.text)).toContain('holiday');
          await lib.close();

          umount(mnt);
          lib = await open(join(tmp.dir, 'lib'));
          expect(await lib.indexer.run()).toMatchObject({ state: 'done', total: 0 });
          expect(lib.roots.list()).toEqual([
            expect.objectContaining({
              id: rootId,
              online: false,
              images: 3,
              offlineReason: expect.stringMatching(/no photos were found in it.*nothing was removed/),
            }),
          ]);
          expect(lib.counts()).toEqual(counts);
          expect(lib.catalog.descriptions(imageId)).toEqual(described);
          expect(lib.search.nearest(q, 3)).toEqual([]);
          await lib.close();

          // Another disk in its place holding one of the three photos: held, not two photos removed.
          mount(['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs'], other);
          copyFileSync(flickrPhotos(1)[0] as string, join(other, basename(photos[0] as string)));
          mount(['--bind', other], mnt);
          lib = await open(join(tmp.dir, 'lib'));
          // Reopened (as `sagasu status` would be): still offline, and why.
          expect(lib.roots.list()[0]?.offlineReason).toMatch(/no photos were found/);
          await lib.indexer.run();
          expect(lib.roots.list()[0]).toMatchObject({
            online: false,
            offlineReason: expect.stringMatching(
              /on another disk than at its last index and 2 of its 3 photos/,
            ),
          });
          expect(lib.counts()).toEqual(counts);
          umount(mnt);

          // The disk is back: online, every photo, tag and caption where it was, searchable again.
          mount(['--bind', disk], mnt);
          expect(await lib.indexer.run()).toMatchObject({ state: 'done', total: 0 });
          expect(lib.roots.list()[0]).toMatchObject({ online: true, offlineReason: null, images: 3 });
          expect(lib.counts()).toEqual(counts);
          expect(lib.catalog.descriptions(imageId)).toEqual(described);
          expect(lib.search.nearest(q, 1)[0]?.imageId).toBe(imageId);
        } finally {
          await lib?.close();
          for (const dir of mounted.reverse()) execFileSync('umount', [dir]);
        }
      },
    );

    it('a folder losing most of its photos at once is held; moves and small deletions are not; removal stays possible', async () => {
      const root = join(tmp.dir, 'photos');
      const trip = join(root, 'trip');
      mkdirSync(trip, { recursive: true });
      const src = flickrPhotos(13);
      for (const [i, file] of src.entries()) copyFileSync(file, join(i < 10 ? trip : root, basename(file)));
      const lib = await open(join(tmp.dir, 'lib-most'));
      try {
        const { id: rootId } = lib.roots.add(root);
        expect(await lib.indexer.run()).toMatchObject({ state: 'done', total: 13, failed: 0 });
        const tripPhoto = lib.catalog.imageByPath(join(trip, basename(src[0] as string)))?.id as number;
        lib.catalog.addTag(tripPhoto, 'summer');

        // Ten photos renamed at once (their folder): moves, found by content, nothing held or lost.
        const renamed = join(root, 'trip 2019');
        renameSync(trip, renamed);
        expect(await lib.indexer.run()).toMatchObject({ state: 'done', total: 0 });
        expect(lib.roots.list()[0]).toMatchObject({ online: true, images: 13 });
        expect(lib.catalog.image(tripPhoto)?.path).toBe(join(renamed, basename(src[0] as string)));

        // One photo deleted: removed as always.
        rmSync(join(root, basename(src[12] as string)));
        await lib.indexer.run();
        expect(lib.roots.list()[0]).toMatchObject({ online: true, images: 12 });

        // Ten of the twelve gone in one walk (a share only partly mounted): held, nothing removed.
        const away = join(tmp.dir, 'elsewhere');
        renameSync(renamed, away);
        await lib.indexer.run();
        expect(lib.roots.list()).toEqual([
          expect.objectContaining({
            id: rootId,
            online: false,
            images: 12,
            offlineReason: expect.stringMatching(
              /^10 of its 12 photos vanished at once.*nothing was removed$/,
            ),
          }),
        ]);
        expect(lib.counts()).toMatchObject({ total: 12, indexed: 12 });
        expect(lib.catalog.descriptions(tripPhoto).tags.map((t) => t.text)).toContain('summer');

        // The person confirms they are gone: removed, and the folder is online with the two left.
        expect(await lib.indexer.run({ removeMissing: true })).toMatchObject({ state: 'done' });
        expect(lib.roots.list()[0]).toMatchObject({ online: true, offlineReason: null, images: 2 });
        expect(lib.catalog.image(tripPhoto)).toBeNull();

        // Emptied on purpose: held again (no photos found), and removing the folder still removes it.
        for (const f of src.slice(10, 12)) rmSync(join(root, basename(f)));
        await lib.indexer.run();
        expect(lib.roots.list()[0]).toMatchObject({ online: false, images: 2 });
        expect(lib.roots.remove(rootId)).toEqual({ removedImages: 2 });
        expect(lib.roots.list()).toEqual([]);
        expect(lib.counts()).toMatchObject({ total: 0 });
      } finally {
        await lib.close();
      }
    });
  },
);
