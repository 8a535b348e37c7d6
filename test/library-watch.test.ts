import { copyFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FneExtractor } from '../src-main/engine/fne/index.ts';
import { JointModel, jointModelsDir } from '../src-main/engine/joint/index.ts';
import { Library } from '../src-main/engine/library/index.ts';
import { flickrPhotos, makePhotoFolder, tempDir } from './helpers/library-fixtures.ts';
import { skipNote } from './helpers/shared.ts';

const note = skipNote({ shared: true, cnn: true });

async function waitFor(what: string, condition: () => boolean, seconds = 40): Promise<void> {
  const until = Date.now() + seconds * 1000;
  while (!condition()) {
    if (Date.now() > until) throw new Error(`timed out after ${seconds} s waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe.skipIf(note !== '')(`library watcher${note}`, () => {
  let model: JointModel;
  let extractor: FneExtractor;
  let tmp: ReturnType<typeof tempDir>;
  beforeAll(async () => {
    model = await JointModel.open(join(jointModelsDir, 'fne'));
    extractor = await FneExtractor.open({ threads: 1 });
    tmp = tempDir('watch');
  });
  afterAll(async () => {
    await model?.close();
    await extractor?.close();
    tmp?.cleanup();
  });

  it('keeps the catalog current: new, deleted, and a root that vanishes and comes back', async () => {
    const folder = await makePhotoFolder(join(tmp.dir, 'w'), 3);
    const lib = await Library.open({ dir: join(tmp.dir, 'lib'), model, extractor, workers: 1 });
    try {
      lib.roots.add(folder.root);
      await lib.indexer.run();
      const reported: number[] = [];
      await lib.watcher.start((ids) => reported.push(...ids));
      const spare = flickrPhotos(30).slice(20);

      const added = join(folder.root, 'trip 2019', 'new arrival.jpg');
      copyFileSync(spare[0] as string, added);
      await waitFor('the new photo is indexed', () => lib.catalog.imageByPath(added)?.status === 'indexed');
      const addedId = lib.catalog.imageByPath(added)?.id as number;
      await waitFor('the change is reported', () => reported.includes(addedId));
      expect(lib.search.nearest(lib.search.get(addedId) as Float32Array, 1)[0]?.imageId).toBe(addedId);

      const removed = folder.good[0] as string;
      const removedId = lib.catalog.imageByPath(removed)?.id as number;
      rmSync(removed);
      await waitFor('the deleted photo leaves the catalog', () => lib.catalog.image(removedId) === null);
      await waitFor('the removal is reported', () => reported.includes(removedId));

      // Unplugged: nothing deleted, the root shows offline.
      const before = lib.counts();
      const away = `${folder.root}-away`;
      renameSync(folder.root, away);
      await waitFor('the root shows offline', () => lib.roots.list()[0]?.online === false);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      expect(lib.counts()).toEqual(before);
      // Plugged back in, with a photo added meanwhile: picked up without a manual run.
      const whileAway = join(away, 'while away.jpg');
      copyFileSync(spare[1] as string, whileAway);
      renameSync(away, folder.root);
      const back = join(folder.root, 'while away.jpg');
      await waitFor(
        'the photo added while offline is indexed',
        () => lib.catalog.imageByPath(back)?.status === 'indexed',
      );
      expect(lib.roots.list()[0]?.online).toBe(true);
      expect(lib.counts()).toMatchObject({ total: before.total + 1, pending: 0 });
    } finally {
      await lib.close();
    }
  });
});
