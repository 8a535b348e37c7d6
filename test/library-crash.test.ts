import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CATALOG_FILE, Catalog, INDEX_FILE, Library } from '../src-main/engine/library/index.ts';
import { flickrPhotos, tempDir } from './helpers/library-fixtures.ts';
import { skipNote } from './helpers/shared.ts';

const note = skipNote({ shared: true, cnn: true });
const child = fileURLToPath(new URL('./helpers/library-child.ts', import.meta.url));
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
// A bound for a stuck child, not a measure: each test runs several children that load the CNN on busy cores.
const TIMEOUT = 600_000;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  lines: Array<Record<string, unknown>>;
  /** The halt point the child reported before it was killed there. */
  halted: string | null;
}

/**
 * Runs the indexing child to the end, or kills it with SIGKILL: `halt` ('point' or 'point:n', see
 * src-main/engine/library/halt.ts) when the child reports it stopped there; `delay` some ms after it opened the
 * library or reported its first embedded photos (whatever it is doing by then).
 */
function runChild(
  dir: string,
  root: string,
  kill: { halt?: string; delay?: { after: 'open' | 'embedding'; ms: number } } = {},
): Promise<Run> {
  const args = ['--import', tsx, child, 'index', dir, root, ...(kill.halt ? [kill.halt] : [])];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, unknown>> = [];
  let halted: string | null = null;
  let buffer = '';
  let stderr = '';
  let armed = false;
  proc.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  proc.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let nl = buffer.indexOf('\n');
    while (nl >= 0) {
      const line = JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>;
      lines.push(line);
      buffer = buffer.slice(nl + 1);
      nl = buffer.indexOf('\n');
      if (typeof line.halt === 'string') {
        // The child waits at the point until killed: however late this line is read, the kill lands there.
        halted = line.halt;
        proc.kill('SIGKILL');
      }
      const delay = kill.delay;
      const trigger = delay?.after === 'open' ? line.open !== undefined : (line.progress as number) > 0;
      if (delay && trigger && !armed) {
        armed = true;
        setTimeout(() => proc.kill('SIGKILL'), delay.ms);
      }
    }
  });
  return new Promise((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', (code, signal) => {
      if (code !== 0 && signal === null) reject(new Error(`indexing child failed (${code}): ${stderr}`));
      else resolve({ code, signal, lines, halted });
    });
  });
}

/** Runs the child up to `halt` and checks it was killed there (it exits 0 if it never reaches the point). */
async function killAt(dir: string, root: string, halt: string): Promise<void> {
  const run = await runChild(dir, root, { halt });
  expect({ halted: run.halted, signal: run.signal }, `the child never reached ${halt}`).toEqual({
    halted: halt.split(':')[0],
    signal: 'SIGKILL',
  });
}

/** What the catalog on disk holds after a kill (read directly: no Library, so nothing is repaired first). */
function onDisk(dir: string): { images: number; indexed: number; embeddings: number; paths: string[] } {
  const catalog = new Catalog(join(dir, CATALOG_FILE));
  try {
    const count = (sql: string) => (catalog.db.prepare(sql).get() as { n: number }).n;
    return {
      images: count('SELECT count(*) AS n FROM images'),
      indexed: count(`SELECT count(*) AS n FROM images WHERE status = 'indexed'`),
      embeddings: count('SELECT count(*) AS n FROM embeddings'),
      paths: (
        catalog.db.prepare('SELECT path FROM images ORDER BY path').all() as Array<{ path: string }>
      ).map((r) => r.path),
    };
  } finally {
    catalog.close();
  }
}

function imageId(dir: string, path: string): number | undefined {
  const catalog = new Catalog(join(dir, CATALOG_FILE));
  try {
    return catalog.imageByPath(path)?.id;
  } finally {
    catalog.close();
  }
}

/** Every photo once in the catalog, indexed, with one vector each, and the search index equal to the catalog. */
async function expectComplete(dir: string, files: string[]): Promise<void> {
  const lib = await Library.open({ dir });
  try {
    expect(lib.counts()).toEqual({ total: files.length, indexed: files.length, failed: 0, pending: 0 });
    const images = [...lib.catalog.allImages()];
    expect(images.map((i) => i.path).sort()).toEqual([...files].sort());
    expect(lib.search.size).toBe(files.length);
    for (const image of images) {
      const hits = lib.search.nearest(lib.search.get(image.id) as Float32Array, 1);
      expect(hits[0]?.imageId).toBe(image.id);
    }
  } finally {
    await lib.close();
  }
  const catalog = new Catalog(join(dir, CATALOG_FILE));
  try {
    const rows = catalog.db
      .prepare('SELECT count(*) AS n, count(DISTINCT image_id) AS d FROM embeddings')
      .get() as { n: number; d: number };
    expect(rows).toEqual({ n: files.length, d: files.length });
  } finally {
    catalog.close();
  }
}

describe.skipIf(note !== '')(`library crash safety: kill -9 mid-indexing${note}`, () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeAll(() => {
    tmp = tempDir('crash');
  });
  afterAll(() => tmp?.cleanup());

  /** 40 photos, in a subfolder and with Japanese names too. */
  function photoFolder(name: string): { root: string; files: string[] } {
    const root = join(tmp.dir, name);
    mkdirSync(join(root, 'sub フォルダ'), { recursive: true });
    const files = flickrPhotos(40).map((src, i) => {
      const target = join(
        root,
        i % 2 ? 'sub フォルダ' : '',
        i % 5 === 0 ? `写真 ${i}.jpg` : `photo ${i}.jpg`,
      );
      copyFileSync(src, target);
      return target;
    });
    return { root, files };
  }

  it(
    'killed at each step (walk, walk commit, embedding, index save) with moves and deletes between runs, it completes with nothing lost, duplicated or embedded twice',
    async () => {
      const { root, files } = photoFolder('photos-halted');
      const dir = join(tmp.dir, 'library-halted');
      const sorted = [...files].sort();

      // The first run dies after walking, then inside the walk's transaction: it never committed a row.
      await killAt(dir, root, 'walked');
      expect(onDisk(dir)).toMatchObject({ images: 0, embeddings: 0 });
      await killAt(dir, root, 'reconciling');
      expect(onDisk(dir)).toMatchObject({ images: 0, embeddings: 0 });

      // Batches of 4, a checkpoint save after each. Killed with the 2nd batch in the catalog but not in the graph.
      await killAt(dir, root, 'embedded:2');
      expect(onDisk(dir)).toEqual({ images: 40, indexed: 8, embeddings: 8, paths: sorted });
      // Two batches on, killed while the 2nd checkpoint's file is written but not yet renamed over the old one.
      await killAt(dir, root, 'saving:2');
      expect(onDisk(dir)).toEqual({ images: 40, indexed: 16, embeddings: 16, paths: sorted });
      expect(existsSync(join(dir, `${INDEX_FILE}.tmp`))).toBe(true);
      // Killed with the new index file in place and the catalog still describing the previous one.
      await killAt(dir, root, 'saved');
      expect(onDisk(dir)).toEqual({ images: 40, indexed: 20, embeddings: 20, paths: sorted });

      // Between runs, an indexed photo is renamed and another deleted.
      const catalog = new Catalog(join(dir, CATALOG_FILE));
      const indexed = (
        catalog.db.prepare(`SELECT path FROM images WHERE status = 'indexed' ORDER BY path`).all() as Array<{
          path: string;
        }>
      ).map((r) => r.path);
      catalog.close();
      const [movedFrom, deleted] = indexed as [string, string];
      const movedTo = join(root, 'renamed 写真.jpg');
      const movedId = imageId(dir, movedFrom);
      renameSync(movedFrom, movedTo);
      rmSync(deleted);
      const now = [...files.filter((f) => f !== movedFrom && f !== deleted), movedTo];

      // Killed inside the transaction that records the move and the deletion: neither is half-applied.
      await killAt(dir, root, 'reconciling');
      expect(onDisk(dir)).toEqual({ images: 40, indexed: 20, embeddings: 20, paths: sorted });
      // Killed after the next batch: the move and the deletion are committed, the moved photo kept its vector.
      await killAt(dir, root, 'embedded:1');
      expect(onDisk(dir)).toEqual({ images: 39, indexed: 23, embeddings: 23, paths: [...now].sort() });
      expect(imageId(dir, movedTo)).toBe(movedId);

      const final = await runChild(dir, root);
      expect(final.code).toBe(0);
      // Only the 16 photos never committed are embedded now: no killed run's work is done twice.
      expect(final.lines.at(-1)).toMatchObject({ done: { state: 'done', total: 16, done: 16, failed: 0 } });
      await expectComplete(dir, now);
    },
    TIMEOUT,
  );

  it(
    'killed at random moments (a random schedule, an extra to the fixed points), it completes with nothing lost or duplicated',
    async () => {
      const { root, files } = photoFolder('photos-random');
      const dir = join(tmp.dir, 'library-random');
      const kills: Array<{ after: string; ms: number; photosDone: unknown }> = [];
      for (let i = 0; i < 6; i++) {
        // Alternately amid embedding batches, transactions and checkpoint saves, and early (walking, loading the CNN).
        // Where a kill lands depends on the machine's speed; only the end state is asserted.
        const delay = {
          after: i % 2 ? ('open' as const) : ('embedding' as const),
          ms: Math.round(Math.random() * 1500),
        };
        const run = await runChild(dir, root, { delay });
        if (run.signal !== 'SIGKILL') break; // it finished before the kill: nothing left to interrupt
        kills.push({
          ...delay,
          photosDone: run.lines.filter((l) => 'progress' in l).at(-1)?.progress ?? null,
        });
      }
      console.log(`kills: ${JSON.stringify(kills)}`);
      const final = await runChild(dir, root);
      expect(final.code).toBe(0);
      expect(final.lines.at(-1)).toMatchObject({ done: { state: 'done' } });
      await expectComplete(dir, files);
    },
    TIMEOUT,
  );

  it(
    'killed while moving to another model set (a batch of its vectors committed, inside the swap), the next run goes on and swaps, the two never mixed',
    async () => {
      const root = join(tmp.dir, 'photos-switch');
      mkdirSync(root);
      const files = flickrPhotos(10).map((src, i) => {
        const target = join(root, `photo ${i}.jpg`);
        copyFileSync(src, target);
        return target;
      });
      const dir = join(tmp.dir, 'library-switch');
      expect((await runChild(dir, root)).code).toBe(0);
      // The choice is made here; the children open the library without one and take it from the catalog.
      await (await Library.open({ dir, modelSet: 'one-layer' })).close();
      const rows = () => {
        const catalog = new Catalog(join(dir, CATALOG_FILE));
        try {
          const bySet = (table: string) =>
            (
              catalog.db
                .prepare(`SELECT model, count(*) AS n FROM ${table} GROUP BY model ORDER BY model`)
                .all() as Array<{
                model: string;
                n: number;
              }>
            ).map((r) => `${r.model.split('@')[0]} ${r.n}`);
          return {
            served: catalog.meta('vectors')?.split('@')[0],
            embeddings: bySet('embeddings'),
            classes: bySet('classes'),
          };
        } finally {
          catalog.close();
        }
      };

      // Batches of 4: killed with two of them committed beside the fne rows, which still serve.
      await killAt(dir, root, 'switching:2');
      expect(rows()).toEqual({
        served: 'fne',
        embeddings: ['fne 10', 'one-layer 8'],
        classes: ['fne 10', 'one-layer 8'],
      });
      // The next run makes only the 2 missing, then dies inside the swap: the transaction never committed.
      const run = await runChild(dir, root, { halt: 'swapping' });
      expect(run.halted).toBe('swapping');
      expect(run.lines.filter((l) => l.state === 'running').at(-1)).toMatchObject({ progress: 2 });
      expect(rows()).toEqual({
        served: 'fne',
        embeddings: ['fne 10', 'one-layer 10'],
        classes: ['fne 10', 'one-layer 10'],
      });
      const final = await runChild(dir, root);
      expect(final.lines.at(-1)).toMatchObject({ done: { state: 'done', total: 0 } });
      expect(rows()).toEqual({
        served: 'one-layer',
        embeddings: ['one-layer 10'],
        classes: ['one-layer 10'],
      });
      await expectComplete(dir, files);
    },
    TIMEOUT,
  );
});
