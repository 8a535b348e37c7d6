import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { WebSocket } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IndexProgress, SearchPage, Status } from '../src-main/contract/index.ts';
import { bootstrapLibrary, DEMO_MARKER, sampleLibraryDir } from '../src-main/doors/index.ts';
import { type EngineHost, openEngineWorker } from '../src-main/engine/api/index.ts';
import { type RunningServer, startServer } from '../src-main/server/app.ts';
import { skipNote } from './helpers/shared.ts';

/**
 * The server in front of the real engine (in its worker thread, as `npm run serve` runs it), on a few photos
 * of the demo library: first-run bootstrap, indexing events over the socket, search, media and upload.
 */
const demo = sampleLibraryDir();
const note =
  skipNote({ cnn: true }) ||
  (existsSync(join(demo, 'attribution.json'))
    ? ''
    : ' [skipped: assets/sample-library is not built; npm run demo:build needs apt-get and dpkg]');

/** Photos picked by what they show (the names are neutral): one the sentence below must find, and others. */
const PICKS = [
  'explore_farm_animals__dog.webp', // a German shepherd dog standing on grass
  'lighthouse.jpg',
  'coffee.png',
  'erase__horse.webp',
  'citrus-fruits.jpg',
  'explore_world_animals__polar_bear.webp',
  'explore_monuments__wonders_colosseum.webp',
  'rocket.jpg',
];

describe(`server with the real engine${note}`, () => {
  let dir: string;
  let photos: string;
  let library: string;
  let engine: EngineHost;
  let server: RunningServer;
  let names: Map<string, string>;
  const progress: IndexProgress[] = [];
  let socket: WebSocket;

  const call = async <T>(
    method: string,
    input: unknown,
  ): Promise<{
    status: number;
    body: { ok: boolean; result: T; error: { code: string; subject: string } };
  }> => {
    const res = await fetch(`${server.origin}/api/call/${method}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(input),
    });
    return { status: res.status, body: (await res.json()) as never };
  };

  beforeAll(async () => {
    if (note) return;
    dir = await mkdtemp(join(tmpdir(), 'sagasu-server-engine-'));
    photos = join(dir, 'demo');
    library = join(dir, 'library');
    await mkdir(photos);
    const listed = JSON.parse(await readFile(join(demo, 'attribution.json'), 'utf8')) as Array<{
      file: string;
      original: string;
    }>;
    names = new Map();
    for (const pick of PICKS) {
      const photo = listed.find((p) => p.original.endsWith(`/${pick}`));
      if (!photo) throw new Error(`${pick} is not in the demo library`);
      names.set(pick, photo.file);
      await copyFile(join(demo, photo.file), join(photos, photo.file));
    }
    engine = await openEngineWorker({ libraryDir: library });
    server = await startServer({ engine });
    socket = new WebSocket(`ws://127.0.0.1:${server.port}/api/events?token=${server.token}`);
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener('open', () => resolve());
      socket.addEventListener('error', () => reject(new Error('the event socket did not open')));
    });
    socket.addEventListener('message', (m) => {
      const message = JSON.parse(String(m.data)) as { event: string; payload: IndexProgress };
      if (message.event === 'index.progress') progress.push(message.payload);
    });
  });

  afterAll(async () => {
    socket?.close();
    await server?.close();
    await engine?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.skipIf(note !== '')(
    'first run adds the demo folder, indexes it, and reports progress over the socket',
    async () => {
      const first = await bootstrapLibrary(engine, { libraryDir: library, demoDir: photos });
      expect(first.added?.path).toBe(photos);
      const done = await engine.whenIdle();
      expect(done.state).toBe('done');
      const { body } = await call<Status>('status', {});
      expect(body.result.roots).toHaveLength(1);
      expect(body.result.images.indexed).toBe(PICKS.length);
      // Events arrive asynchronously; the last one says the run finished.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(progress.length).toBeGreaterThan(0);
      expect(progress.at(-1)?.state).toBe('done');
      expect(existsSync(join(library, DEMO_MARKER))).toBe(true);
      const again = await bootstrapLibrary(engine, { libraryDir: library, demoDir: photos });
      expect(again.added).toBeNull();
    },
  );

  it.skipIf(note !== '')('finds the photo a sentence describes, and serves its thumbnail by id', async () => {
    const { status, body } = await call<SearchPage>('search', {
      query: 'a dog standing on the grass',
      cutoff: null,
    });
    expect(status).toBe(200);
    const top3 = body.result.hits.slice(0, 3).map((h) => h.path);
    expect(top3.some((p) => p.endsWith(names.get(PICKS[0] as string) as string))).toBe(true);
    const hit = body.result.hits[0];
    const thumb = await fetch(`${server.origin}/media/thumb/${hit?.imageId}?size=128&token=${server.token}`);
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get('content-type')).toBe('image/jpeg');
    const meta = await sharp(Buffer.from(await thumb.arrayBuffer())).metadata();
    expect(Math.max(meta.width ?? 0, meta.height ?? 0)).toBe(128);
    const full = await fetch(`${server.origin}/media/full/${hit?.imageId}?token=${server.token}`);
    expect(Buffer.from(await full.arrayBuffer()).equals(await readFile(hit?.path as string))).toBe(true);
  });

  it.skipIf(note !== '')(
    'answers 404 for media of an id not in the catalog and 400 for wrong types',
    async () => {
      expect((await fetch(`${server.origin}/media/thumb/999999?token=${server.token}`)).status).toBe(404);
      expect((await fetch(`${server.origin}/media/full/999999?token=${server.token}`)).status).toBe(404);
      const wrong = await call('search', { query: ['dogs'] });
      expect(wrong.status).toBe(400);
      expect(wrong.body.error.subject).toBe('search.query');
      const missing = await call('image.get', { imageId: 999999 });
      expect(missing.status).toBe(404);
    },
  );

  it.skipIf(note !== '')('finds a dropped photo itself first through similar-upload', async () => {
    const file = join(photos, names.get('lighthouse.jpg') as string);
    const res = await fetch(`${server.origin}/api/similar-upload?k=3`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'image/jpeg' },
      body: await readFile(file),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { result: SearchPage };
    expect(body.result.hits[0]?.path).toBe(file);
    const junk = await fetch(`${server.origin}/api/similar-upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'image/jpeg' },
      body: Buffer.from('not a jpeg at all'),
    });
    expect(junk.status).toBe(400);
  });
});
