/**
 * Media through the real server and engine (in its worker, as `npm run serve` runs it) when a library folder
 * holds something other than photos: a link to a text file named like a photo, a photo swapped for such a
 * link after indexing, and a photo replaced by a FIFO. None may be served, and none may hold up the others.
 */
import { spawnSync } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdir, mkdtemp, open, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EngineHost, openEngineWorker } from '../src-main/engine/api/index.ts';
import { CATALOG_FILE } from '../src-main/engine/library/index.ts';
import { type RunningServer, startServer } from '../src-main/server/app.ts';
import { skipNote } from './helpers/shared.ts';

const hasMkfifo = process.platform !== 'win32' && spawnSync('mkfifo', ['--version']).status === 0;
const note = skipNote({ cnn: true }) || (hasMkfifo ? '' : ' [skipped: no mkfifo on this machine]');
const SECRET = 'the contents of a private file, not a photo\n';

describe(`media of files that are not photos${note}`, () => {
  let dir: string;
  let photos: string;
  let engine: EngineHost;
  let server: RunningServer;
  const ids = new Map<string, number>();
  const fifos: string[] = [];

  const media = (kind: 'thumb' | 'full', name: string) =>
    fetch(`${server.origin}/media/${kind}/${ids.get(name)}?token=${server.token}`);

  beforeAll(async () => {
    if (note) return;
    dir = await mkdtemp(join(tmpdir(), 'sagasu-media-'));
    photos = join(dir, 'photos');
    await mkdir(photos);
    for (const [name, background] of [
      ['a.jpg', '#c04020'],
      ['b.jpg', '#20a040'],
      ['c.jpg', '#2040c0'],
    ] as const) {
      const jpeg = await sharp({ create: { width: 96, height: 64, channels: 3, background } })
        .jpeg()
        .toBuffer();
      await writeFile(join(photos, name), jpeg);
    }
    await writeFile(join(dir, 'secret.txt'), SECRET);
    await symlink(join(dir, 'secret.txt'), join(photos, 'zz.jpg'));
    engine = await openEngineWorker({ libraryDir: join(dir, 'library') });
    server = await startServer({ engine });
    const root = await engine.invoke('roots.add', { path: photos });
    await engine.invoke('index.start', { rootId: root.id });
    await engine.whenIdle();
    const db = new Database(join(dir, 'library', CATALOG_FILE), { readonly: true });
    for (const row of db.prepare('SELECT id, path FROM images').all() as Array<{ id: number; path: string }>)
      ids.set(row.path.slice(photos.length + 1), row.id);
    db.close();
  });

  afterAll(async () => {
    // Should a read still wait on a FIFO (the bug this tests), a writer opening it lets the read finish.
    for (const fifo of fifos)
      await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK)
        .then((h) => h.close())
        .catch(() => {});
    await server?.close();
    await engine?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.skipIf(note !== '')('never serves an entry that did not decode (a link to a text file)', async () => {
    expect([...ids.keys()].sort()).toEqual(['a.jpg', 'b.jpg', 'c.jpg', 'zz.jpg']);
    for (const kind of ['full', 'thumb'] as const) {
      const res = await media(kind, 'zz.jpg');
      expect(res.status).toBe(404);
      const body = await res.text();
      expect(body).not.toContain('private file');
      expect(JSON.parse(body).error.message).toMatch(/could not be read as one when indexed/);
    }
    const good = await media('full', 'a.jpg');
    expect(good.status).toBe(200);
    expect(good.headers.get('content-type')).toBe('image/jpeg');
  });

  it.skipIf(note !== '')('refuses a photo swapped for a link to a text file after indexing', async () => {
    await unlink(join(photos, 'b.jpg'));
    await symlink(join(dir, 'secret.txt'), join(photos, 'b.jpg'));
    for (const kind of ['full', 'thumb'] as const) {
      const res = await media(kind, 'b.jpg');
      expect(res.status).toBe(400);
      const body = await res.text();
      expect(body).not.toContain('private file');
      expect(JSON.parse(body).error.message).toMatch(/no longer a photo/);
    }
  });

  it.skipIf(note !== '')(
    'a photo replaced by a FIFO is refused at once, and every other request is still served',
    async () => {
      const fifo = join(photos, 'c.jpg');
      await unlink(fifo);
      expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
      fifos.push(fifo);
      // More requests than libuv has threads: reads blocked on the FIFO would leave none for anything else.
      const onFifo = await Promise.all(
        Array.from({ length: 6 }, (_, k) => media(k % 2 ? 'thumb' : 'full', 'c.jpg')),
      );
      for (const res of onFifo) {
        expect(res.status).toBe(400);
        expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(
          /not a regular file/,
        );
      }
      const thumb = await media('thumb', 'a.jpg');
      expect(thumb.status).toBe(200);
      expect(thumb.headers.get('content-type')).toBe('image/jpeg');
      expect((await fetch(`${server.origin}/`)).status).toBe(200);
    },
  );
});
