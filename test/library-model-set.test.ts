import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src-main/engine/api/index.ts';
import { ArgumentError, ModelError } from '../src-main/engine/errors.ts';
import { FneExtractor } from '../src-main/engine/fne/index.ts';
import { JointModel, jointModelsDir, listModelSets } from '../src-main/engine/joint/index.ts';
import { CATALOG_FILE, Catalog, cosine, Library } from '../src-main/engine/library/index.ts';
import { MIGRATIONS } from '../src-main/engine/library/schema.ts';
import { openDatabase } from '../src-main/engine/library/sqlite.ts';
import { projectRoot } from '../src-main/engine/paths.ts';
import { makePhotoFolder, tempDir } from './helpers/library-fixtures.ts';
import { skipNote } from './helpers/shared.ts';

const note = skipNote({ shared: true, cnn: true });

/** The catalog's vector and class rows per model set, read directly. */
function rowsBySet(dir: string): { embeddings: Record<string, number>; classes: Record<string, number> } {
  const catalog = new Catalog(join(dir, CATALOG_FILE));
  try {
    const count = (table: string) =>
      Object.fromEntries(
        (
          catalog.db.prepare(`SELECT model, count(*) AS n FROM ${table} GROUP BY model`).all() as Array<{
            model: string;
            n: number;
          }>
        ).map((r) => [r.model.split('@')[0], r.n]),
      );
    return { embeddings: count('embeddings'), classes: count('classes') };
  } finally {
    catalog.close();
  }
}

describe('model sets: discovery', () => {
  it('lists the English joint models of models/manifest.json with their backbone and Japanese encoder', async () => {
    const sets = await listModelSets();
    expect(sets.map((s) => [s.name, s.backbone, s.jaDir !== null])).toEqual([
      ['fne', 'mobilenet_v2', true],
      ['one-layer', 'mobilenet_v2', false],
    ]);
    expect(sets[0]?.version).toMatch(/^fne@[0-9a-f]{16}$/);
  });

  it('refuses a model trained on features ternarized at other thresholds, naming its manifest', async () => {
    const tmp = tempDir('model-set-thresholds');
    try {
      const manifest = JSON.parse(readFileSync(join(jointModelsDir, 'fne', 'manifest.json'), 'utf8'));
      manifest.data.thresholds = { positive: 0.5, negative: -0.5 };
      mkdirSync(join(tmp.dir, 'joint', 'fne'), { recursive: true });
      writeFileSync(join(tmp.dir, 'joint', 'fne', 'manifest.json'), JSON.stringify(manifest));
      writeFileSync(join(tmp.dir, 'manifest.json'), JSON.stringify({ joint: { fne: { dir: 'joint/fne' } } }));
      const refused = await listModelSets(tmp.dir).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(ModelError);
      expect((refused as ModelError).message).toContain(join(tmp.dir, 'joint', 'fne', 'manifest.json'));
      expect((refused as ModelError).message).toContain('ternarized at -0.5 / 0.5');
    } finally {
      tmp.cleanup();
    }
  });

  it('a catalog of schema 4 keeps its vectors, and its classes take the model set of their vector', () => {
    const tmp = tempDir('model-set-migrate');
    try {
      const file = join(tmp.dir, CATALOG_FILE);
      const db = openDatabase(file);
      for (const [v, sql] of MIGRATIONS.slice(0, 4).entries()) {
        db.exec(sql);
        db.pragma(`user_version = ${v + 1}`);
      }
      db.exec(`INSERT INTO roots(id, path, added_at) VALUES (1, '/p', 0);
        INSERT INTO images(id, root_id, path, bytes, mtime_ms, status, updated_at) VALUES
          (1, 1, '/p/a.jpg', 1, 0, 'indexed', 0), (2, 1, '/p/b.jpg', 1, 0, 'failed', 0);
        INSERT INTO embeddings(image_id, model, scale, q) VALUES (1, 'fne@0123456789abcdef', 1.0, x'01');
        INSERT INTO classes(image_id, top) VALUES (1, x'0100ff'), (2, x'0200ff');`);
      db.close();
      const catalog = new Catalog(file);
      try {
        expect(catalog.vectorModels()).toEqual(['fne@0123456789abcdef']);
        expect([...catalog.vectors('fne@0123456789abcdef')].map((v) => v.id)).toEqual([1]);
        // Classes without a vector were of no model set: classifying takes them again.
        expect([...catalog.classRows('fne@0123456789abcdef')].map((r) => r.id)).toEqual([1]);
        expect(catalog.db.prepare('SELECT count(*) AS n FROM classes').get()).toEqual({ n: 1 });
      } finally {
        catalog.close();
      }
    } finally {
      tmp.cleanup();
    }
  });

  it('refuses an unknown set by name, listing the choices, before touching the library', async () => {
    const tmp = tempDir('model-set-bad');
    try {
      const dir = join(tmp.dir, 'lib');
      const refused = Library.open({ dir, modelSet: 'resnet' });
      await expect(refused).rejects.toThrow(ArgumentError);
      await expect(refused).rejects.toThrow(
        'modelSet: no model set is named "resnet"; choose one of fne, one-layer',
      );
      expect(existsSync(dir)).toBe(false);
    } finally {
      tmp.cleanup();
    }
  });

  it('the CLI says so in one line with exit code 1, no stack trace', () => {
    const tmp = tempDir('model-set-cli');
    try {
      const run = spawnSync(
        process.execPath,
        [join(projectRoot, 'bin', 'sagasu.js'), 'index', '--model-set', 'resnet', '--library', tmp.dir],
        { encoding: 'utf8' },
      );
      expect(run.status).toBe(1);
      expect(run.stderr.trim()).toBe(
        'sagasu: modelSet: no model set is named "resnet"; choose one of fne, one-layer',
      );
    } finally {
      tmp.cleanup();
    }
  });
});

describe.skipIf(note !== '')(`model sets: switching a library${note}`, () => {
  let model: JointModel;
  let extractor: FneExtractor;
  let tmp: ReturnType<typeof tempDir>;

  beforeAll(async () => {
    model = await JointModel.open(join(jointModelsDir, 'fne'));
    extractor = await FneExtractor.open({ threads: 1 });
    tmp = tempDir('model-set');
  });
  afterAll(async () => {
    await model?.close();
    await extractor?.close();
    tmp?.cleanup();
  });

  it('re-indexes with the chosen set while the old vectors answer, then swaps; never both in one index', async () => {
    const folder = await makePhotoFolder(join(tmp.dir, 'a'), 5);
    const dir = join(tmp.dir, 'a-lib');
    const n = folder.good.length;
    let lib = await Library.open({ dir, model, extractor, workers: 1, batchSize: 2 });
    lib.roots.add(folder.root);
    await lib.indexer.run();
    const ids = folder.good.map((p) => lib.catalog.imageByPath(p)?.id as number);
    const fneVectors = ids.map((id) => lib.search.get(id) as Float32Array);
    expect(lib.modelSets()).toMatchObject({ active: 'fne', chosen: 'fne', pending: 0 });
    await lib.close();

    // Opened with another set: nothing is pending for search, the fne vectors still answer it.
    lib = await Library.open({ dir, model, extractor, workers: 1, batchSize: 2, modelSet: 'one-layer' });
    try {
      expect(lib.modelSets()).toMatchObject({ active: 'fne', chosen: 'one-layer', pending: n });
      expect(lib.counts()).toMatchObject({ indexed: n, pending: 0 });
      const answersFromFne = () =>
        ids.every((id, i) => {
          const hit = lib.search.nearest(fneVectors[i] as Float32Array, 1)[0];
          return hit?.imageId === id && hit.score > 0.99;
        });
      expect(answersFromFne()).toBe(true);

      // At every step of the run, and when the new set is complete but not yet swapped in, search is the old set
      // alone: the graph holds exactly the served set's vectors.
      const during: Array<{ active: string; pending: number; graph: number; fne: boolean }> = [];
      const look = () => {
        const sets = lib.modelSets();
        during.push({
          active: sets.active,
          pending: sets.pending,
          graph: lib.search.size,
          fne: answersFromFne(),
        });
      };
      lib.onSwitch(async () => {
        look();
        return () => {};
      });
      const result = await lib.indexer.run({
        onProgress: (p) => {
          if (p.state === 'running') look();
        },
      });
      expect(result).toMatchObject({ state: 'done', failed: 0 });
      expect(during.length).toBeGreaterThan(2);
      for (const d of during) expect(d).toMatchObject({ active: 'fne', graph: n, fne: true });
      expect(during.map((d) => d.pending)).toContain(0);
      expect(Math.max(...during.map((d) => d.pending))).toBeGreaterThan(0);

      // After: the one-layer vectors answer, the fne rows are gone.
      expect(lib.modelSets()).toMatchObject({ active: 'one-layer', chosen: 'one-layer', pending: 0 });
      expect(lib.modelVersion).toMatch(/^one-layer@/);
      expect(lib.counts()).toMatchObject({ indexed: n, pending: 0 });
      expect(lib.search.size).toBe(n);
      for (const [i, id] of ids.entries()) {
        const vector = lib.search.get(id) as Float32Array;
        expect(cosine(vector, fneVectors[i] as Float32Array)).toBeLessThan(0.99);
        expect(lib.search.nearest(vector, 1)[0]?.imageId).toBe(id);
      }
      expect(lib.search.classes.size).toBe(n);
    } finally {
      await lib.close();
    }
    expect(rowsBySet(dir)).toEqual({ embeddings: { 'one-layer': n }, classes: { 'one-layer': n } });

    // The choice is the library's: a plain open keeps it, and the engine answers with it. The one-layer set has no
    // Japanese encoder: a Japanese query is refused with a typed error naming it.
    const engine = await Engine.open({ libraryDir: dir });
    try {
      const status = await engine.invoke('status', {});
      expect(status.model).toMatchObject({ name: 'one-layer', languages: ['en'] });
      expect(status.modelSets).toMatchObject({ active: 'one-layer', chosen: 'one-layer', pending: 0 });
      const page = await engine.invoke('search', { query: 'a dog', cutoff: null });
      expect(page.hits.length).toBe(n);
      await expect(engine.invoke('search', { query: '犬が走る', lang: 'ja' })).rejects.toThrow(
        /lang: the model one-layer has no ja sentence encoder/,
      );

      // Back to fne through the contract: the switch runs in the background; whenIdle waits for it.
      const chosen = await engine.invoke('modelSet.choose', { name: 'fne' });
      expect(chosen).toMatchObject({ active: 'one-layer', chosen: 'fne', pending: n });
      await engine.whenIdle();
      expect((await engine.invoke('status', {})).modelSets).toMatchObject({ active: 'fne', pending: 0 });
      expect(
        (await engine.invoke('search', { query: '犬が走る', lang: 'ja', cutoff: null })).hits.length,
      ).toBe(n);
      await expect(engine.invoke('modelSet.choose', { name: 'nope' })).rejects.toThrow(
        'modelSet: no model set is named "nope"; choose one of fne, one-layer',
      );
    } finally {
      await engine.close();
    }
    expect(rowsBySet(dir)).toEqual({ embeddings: { fne: n }, classes: { fne: n } });
  });
});
