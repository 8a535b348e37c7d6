import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CATALOG_FILE, Catalog, Library } from '../src-main/engine/library/index.ts';
import { flickrPhotos, tempDir } from './helpers/library-fixtures.ts';
import { skipNote } from './helpers/shared.ts';

const note = skipNote({ shared: true, cnn: true });
const child = fileURLToPath(new URL('./helpers/library-child.ts', import.meta.url));
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  lines: Array<Record<string, unknown>>;
}

/**
 * Runs the indexing child; with `kill`, SIGKILLs it `ms` after it opened the library, or after it reported
 * its first embedded photos.
 */
function runChild(
  dir: string,
  root: string,
  kill?: { after: 'open' | 'embedding'; ms: number },
): Promise<Run> {
  const proc = spawn(process.execPath, ['--import', tsx, child, 'index', dir, root], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Array<Record<string, unknown>> = [];
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
      const trigger = kill?.after === 'open' ? line.open !== undefined : (line.progress as number) > 0;
      if (kill && trigger && !armed) {
        armed = true;
        setTimeout(() => proc.kill('SIGKILL'), kill.ms);
      }
      buffer = buffer.slice(nl + 1);
      nl = buffer.indexOf('\n');
    }
  });
  return new Promise((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', (code, signal) => {
      if (code !== 0 && signal === null) reject(new Error(`indexing child failed (${code}): ${stderr}`));
      else resolve({ code, signal, lines });
    });
  });
}

describe.skipIf(note !== '')(`library crash safety: kill -9 at random moments${note}`, () => {
  let tmp: ReturnType<typeof tempDir>;
  let root: string;
  let files: string[];
  beforeAll(() => {
    tmp = tempDir('crash');
    root = join(tmp.dir, 'photos');
    mkdirSync(join(root, 'sub フォルダ'), { recursive: true });
    files = flickrPhotos(40).map((src, i) => {
      const target = join(
        root,
        i % 2 ? 'sub フォルダ' : '',
        i % 5 === 0 ? `写真 ${i}.jpg` : `photo ${i}.jpg`,
      );
      copyFileSync(src, target);
      return target;
    });
  });
  afterAll(() => tmp?.cleanup());

  it('completes after repeated SIGKILLs with no lost and no duplicated photo, and index == catalog', async () => {
    const dir = join(tmp.dir, 'library');
    const kills: Array<{ after: string; ms: number; photosDone: unknown }> = [];
    for (let i = 0; i < 6; i++) {
      // Alternately amid embedding batches, transactions and checkpoint saves, and early (walking, loading the CNN).
      const kill = {
        after: i % 2 ? ('open' as const) : ('embedding' as const),
        ms: Math.round(Math.random() * 1500),
      };
      const run = await runChild(dir, root, kill);
      if (run.signal !== 'SIGKILL') break; // it finished before the kill: nothing left to interrupt
      kills.push({ ...kill, photosDone: run.lines.filter((l) => 'progress' in l).at(-1)?.progress ?? null });
    }
    const final = await runChild(dir, root);
    expect(final.code).toBe(0);
    expect(final.lines.at(-1)).toMatchObject({ done: { state: 'done' } });
    // Kills landed while photos were being embedded (each run starts where the killed one left off).
    expect(kills.filter((k) => k.after === 'embedding').length).toBeGreaterThan(0);
    console.log(`kills: ${JSON.stringify(kills)}`);

    const lib = await Library.open({ dir });
    try {
      expect(lib.counts()).toEqual({ total: files.length, indexed: files.length, failed: 0, pending: 0 });
      const images = [...lib.allImages()];
      expect(images.map((i) => i.path).sort()).toEqual([...files].sort());
      expect(lib.indexedVectors()).toBe(files.length);
      for (const image of images) {
        const hits = lib.nearest(lib.vector(image.id) as Float32Array, 1);
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
  });
});
