import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Events, type Input, type Method, type Output, parseInput } from '../src-main/contract/index.ts';
import { deferredEngine } from '../src-main/doors/index.ts';
import type { EngineHost } from '../src-main/engine/api/index.ts';
import { ERROR_CODES, type ErrorCode, httpStatus, SagasuError } from '../src-main/engine/errors.ts';
import { type RunningServer, startServer } from '../src-main/server/app.ts';

/**
 * Transport only (auth, validation, routing, media, events) with a small in-test engine; the behaviour of
 * real calls is tested against the real engine in server-engine.test.ts.
 */
class TransportEngine implements EngineHost {
  readonly events = new EventEmitter();
  readonly calls: Array<{ method: string; input: unknown; fileExisted?: boolean; bytes?: number }> = [];

  async invoke<M extends Method>(method: M, input: Input<M>): Promise<Output<M>> {
    const parsed = parseInput(method, input) as Record<string, unknown>;
    const call: (typeof this.calls)[number] = { method, input: parsed };
    if (method === 'similar' && typeof parsed.path === 'string') {
      call.fileExisted = existsSync(parsed.path);
      call.bytes = (await readFile(parsed.path)).length;
    }
    this.calls.push(call);
    // A folder named for an error code: the engine fails with that code, so a test can see what the door answers.
    if (method === 'roots.add' && String(parsed.path).startsWith('fail:'))
      throw new SagasuError(String(parsed.path).slice(5) as ErrorCode, 'roots.add', 'failed as asked');
    if (method === 'image.get' && parsed.imageId !== 1)
      throw new SagasuError('not-found', `image ${parsed.imageId}`, 'no such photo in the library');
    return { echo: parsed } as unknown as Output<M>;
  }

  on<E extends keyof Events>(event: E, listener: (payload: Events[E]) => void): () => void {
    this.events.on(event, listener);
    return () => this.events.off(event, listener);
  }

  async media(imageId: number, kind: 'thumb' | 'full', size?: number) {
    if (imageId !== 1) throw new SagasuError('not-found', `image ${imageId}`, 'no such photo in the library');
    return { bytes: Buffer.from(`${kind}:${size ?? 'none'}`), type: 'image/jpeg' };
  }

  async whenIdle() {
    return {} as never;
  }

  async close() {}
}

let server: RunningServer;
let engine: TransportEngine;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sagasu-server-'));
  await mkdir(join(dir, 'renderer'));
  await writeFile(join(dir, 'renderer', 'index.html'), '<!doctype html><title>Sagasu</title>');
  await writeFile(join(dir, 'secret.txt'), 'outside the renderer');
  engine = new TransportEngine();
  server = await startServer({ engine, rendererDir: join(dir, 'renderer') });
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

function call(method: string, body: unknown, token: string | null = server.token, type = 'application/json') {
  const headers: Record<string, string> = { 'content-type': type };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  return fetch(`${server.origin}/api/call/${method}`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** A raw request: fetch normalizes paths and will not let a test set Host. */
function raw(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: server.port, path, method: 'GET', headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('local server: address and token', () => {
  it('listens on 127.0.0.1 only and prints a URL with the token in the hash', () => {
    expect(server.app.server.address()).toMatchObject({ address: '127.0.0.1' });
    expect(server.browserUrl).toBe(`http://127.0.0.1:${server.port}/#token=${server.token}`);
    expect(server.token).toMatch(/^[\w-]{32}$/);
  });

  it('serves the renderer without a token, with a strict CSP', async () => {
    const res = await fetch(`${server.origin}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('<title>Sagasu</title>');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain('connect-src');
    expect(csp).not.toMatch(/script-src[^;]*unsafe/);
  });

  it('refuses a call without a token or with a wrong one (401)', async () => {
    for (const token of [null, 'x'.repeat(32), `${server.token}x`]) {
      const res = await call('status', {}, token);
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({
        ok: false,
        error: { code: 'unauthorized', subject: 'token' },
      });
    }
    expect(engine.calls).toHaveLength(0);
  });

  it('cannot be dodged by spelling a path differently (%-escapes, slashes)', async () => {
    const spellings = [
      '/%61pi/call/status',
      '/api/%63all/status',
      '//api/call/status',
      '/./api/call/status',
      '/api//call/status',
      '/%6dedia/thumb/1',
      '/media/%74humb/1',
      '//media/thumb/1',
      '/media/thumb/%31',
      '/%61pi/events',
    ];
    for (const path of spellings) {
      for (const method of ['GET', 'POST']) {
        const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = httpRequest({ host: '127.0.0.1', port: server.port, path, method }, (r) => {
            let body = '';
            r.on('data', (chunk) => {
              body += chunk;
            });
            r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
          });
          req.on('error', reject);
          req.end();
        });
        expect([401, 404], `${method} ${path}`).toContain(res.status);
        expect(res.body).not.toContain('"ok":true');
      }
    }
    expect(engine.calls).toHaveLength(0);
  });

  it('refuses media and the event socket without the token', async () => {
    expect((await fetch(`${server.origin}/media/thumb/1`)).status).toBe(401);
    expect((await fetch(`${server.origin}/media/thumb/1?token=wrong`)).status).toBe(401);
    expect((await raw('/api/events')).status).toBe(401);
  });

  it('refuses a Host header other than 127.0.0.1 or localhost (DNS rebinding)', async () => {
    const evil = await raw('/', { host: `evil.example:${server.port}` });
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.body)).toMatchObject({ ok: false, error: { subject: 'host' } });
    const evilApi = await raw(`/media/thumb/1?token=${server.token}`, { host: 'sagasu.attacker.test' });
    expect(evilApi.status).toBe(403);
    expect((await raw('/', { host: `localhost:${server.port}` })).status).toBe(200);
  });

  it('refuses a call from a foreign origin even with the token', async () => {
    const res = await fetch(`${server.origin}/api/call/status`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, origin: 'http://evil.example' },
    });
    expect(res.status).toBe(403);
  });
});

describe('local server: calls', () => {
  it('answers a valid call with { ok, result } and passes the input to the engine', async () => {
    const res = await call('search', { query: 'a dog in the snow', k: 3 });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toMatchObject({ ok: true, result: { echo: { query: 'a dog in the snow', k: 3 } } });
  });

  it('takes an empty body as an empty input', async () => {
    const res = await fetch(`${server.origin}/api/call/status`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}` },
    });
    expect(res.status).toBe(200);
  });

  it('refuses wrong types with 400 naming the field', async () => {
    const before = engine.calls.length;
    const cases: Array<[string, unknown, string]> = [
      ['search', { query: 42 }, 'search.query'],
      ['search', { query: 'x', k: 'ten' }, 'search.k'],
      ['roots.remove', { rootId: -1 }, 'roots.remove.rootId'],
      ['image.get', { imageId: 1, extra: true }, 'image.get'],
      ['search', [1, 2], 'search'],
    ];
    for (const [method, input, subject] of cases) {
      const res = await call(method, input);
      expect(res.status, JSON.stringify(input)).toBe(400);
      const body = (await res.json()) as { ok: boolean; error: { code: string; subject: string } };
      expect(body.ok).toBe(false);
      expect(body.error.code).toBe('invalid-argument');
      expect(body.error.subject).toBe(subject);
    }
    expect(engine.calls.length).toBe(before);
  });

  it('refuses an unknown method with 404 and a non-JSON body with 400/415', async () => {
    const unknown = await call('fs.readFile', { path: '/etc/passwd' });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ ok: false, error: { code: 'unknown-method' } });
    expect((await call('__proto__', {})).status).toBe(404);
    expect((await call('constructor', {})).status).toBe(404);
    const broken = await call('status', '{"not json', server.token);
    expect(broken.status).toBe(400);
    const text = await call('status', 'hello', server.token, 'text/plain');
    expect(text.status).toBe(415);
  });

  it("maps the engine's not-found to 404 with its subject", async () => {
    const res = await call('image.get', { imageId: 999 });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ ok: false, error: { code: 'not-found', subject: 'image 999' } });
  });

  it('answers every error code with its own status, the code and the reason', async () => {
    const answers = await Promise.all(
      ERROR_CODES.map(async (code) => {
        const res = await call('roots.add', { path: `fail:${code}` });
        const body = (await res.json()) as { error: { code: string; message: string } };
        return { code, status: res.status, answered: body.error.code, message: body.error.message };
      }),
    );
    for (const { code, status, answered, message } of answers) {
      expect(status, code).toBe(httpStatus(code));
      expect(answered).toBe(code);
      expect(message).toBe('roots.add: failed as asked');
    }
    // A search that straddles a model-set swap is worth retrying, not a bad request.
    expect(answers.find((a) => a.code === 'model-switched')?.status).toBe(409);
    expect(answers.find((a) => a.code === 'cannot-write')?.status).toBe(500);
  });
});

describe('local server: media', () => {
  it('serves media of a known id, privately cached', async () => {
    const res = await fetch(`${server.origin}/media/thumb/1?size=256&token=${server.token}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect(res.headers.get('cache-control')).toMatch(/^private/);
    expect(await res.text()).toBe('thumb:256');
    const full = await fetch(`${server.origin}/media/full/1?token=${server.token}`);
    expect(await full.text()).toBe('full:none');
  });

  it('answers 404 for an id not in the catalog and 400 for a bad id or size', async () => {
    expect((await fetch(`${server.origin}/media/thumb/2?token=${server.token}`)).status).toBe(404);
    expect((await fetch(`${server.origin}/media/thumb/0?token=${server.token}`)).status).toBe(400);
    expect((await fetch(`${server.origin}/media/thumb/1e3?token=${server.token}`)).status).toBe(400);
    expect((await fetch(`${server.origin}/media/thumb/1?size=99999&token=${server.token}`)).status).toBe(400);
    expect((await fetch(`${server.origin}/media/exif/1?token=${server.token}`)).status).toBe(404);
  });

  it('never reaches a file by path: traversal attempts are 400 or 404', async () => {
    const attempts = [
      `/media/thumb/..%2F..%2Fetc%2Fpasswd?token=${server.token}`,
      `/media/full/%2Fetc%2Fpasswd?token=${server.token}`,
      `/media/full/../../../etc/passwd?token=${server.token}`,
      `/media/full/1/../../../secret.txt?token=${server.token}`,
      '/../secret.txt',
      '/..%2fsecret.txt',
      '/%2e%2e/secret.txt',
      '/..%5csecret.txt',
    ];
    for (const path of attempts) {
      const res = await raw(path);
      expect([400, 404], path).toContain(res.status);
      expect(res.body).not.toContain('outside the renderer');
      expect(res.body).not.toContain('root:');
    }
  });
});

describe('local server: upload and events', () => {
  it('runs similar-upload on a temporary file and deletes it afterwards', async () => {
    const bytes = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4]);
    const res = await fetch(`${server.origin}/api/similar-upload?k=5`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'image/jpeg' },
      body: bytes,
    });
    expect(res.status).toBe(200);
    const last = engine.calls.at(-1);
    expect(last).toMatchObject({ method: 'similar', fileExisted: true, bytes: bytes.length });
    const input = last?.input as { path: string; k: number };
    expect(input.k).toBe(5);
    expect(existsSync(input.path)).toBe(false);
  });

  it('refuses an upload that is not an image, or has no token', async () => {
    const text = await fetch(`${server.origin}/api/similar-upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'text/plain' },
      body: 'hello',
    });
    expect(text.status).toBe(415);
    const anonymous = await fetch(`${server.origin}/api/similar-upload`, {
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body: Buffer.from([1]),
    });
    expect(anonymous.status).toBe(401);
  });

  it('delivers engine events over the WebSocket', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/api/events?token=${server.token}`);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('error', () => reject(new Error('the event socket did not open')));
    });
    const received = new Promise<unknown>((resolve) =>
      ws.addEventListener('message', (m) => resolve(JSON.parse(String(m.data)))),
    );
    const payload = {
      state: 'running',
      done: 3,
      total: 10,
      failed: 0,
      imagesPerSecond: 2,
      etaSeconds: 3.5,
      currentFile: 'a.jpg',
    };
    engine.events.emit('index.progress', payload);
    expect(await received).toEqual({ event: 'index.progress', payload });
    ws.close();
    await new Promise((resolve) => ws.addEventListener('close', resolve));
    // The socket's listeners are gone once it closes.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(engine.events.listenerCount('index.progress')).toBe(0);
  });
});

describe('local server: while the engine is still opening', () => {
  it('listens at once; calls and event listeners wait for the engine', async () => {
    let open: (engine: EngineHost) => void = () => {};
    const opening = new Promise<EngineHost>((resolve) => {
      open = resolve;
    });
    const late = new TransportEngine();
    const early = await startServer({ engine: deferredEngine(opening) });
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${early.port}/api/events?token=${early.token}`);
      await new Promise((resolve) => ws.addEventListener('open', resolve));
      const answer = fetch(`${early.origin}/api/call/search`, {
        method: 'POST',
        headers: { authorization: `Bearer ${early.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ query: 'early bird' }),
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(late.calls).toHaveLength(0);
      open(late);
      const res = await answer;
      expect(res.status).toBe(200);
      expect(late.calls.at(-1)).toMatchObject({ method: 'search', input: { query: 'early bird' } });
      const received = new Promise<unknown>((resolve) =>
        ws.addEventListener('message', (m) => resolve(JSON.parse(String(m.data)))),
      );
      late.events.emit('library.changed', { imageIds: null });
      expect(await received).toEqual({ event: 'library.changed', payload: { imageIds: null } });
      ws.close();
    } finally {
      await early.close();
    }
  });

  it("answers every call with the engine's failure to open (a locked library is 409)", async () => {
    const locked = Promise.reject(
      new SagasuError('library-locked', '/photos/library', 'another Sagasu process has this library open'),
    );
    const failed = await startServer({ engine: deferredEngine(locked) });
    try {
      const res = await fetch(`${failed.origin}/api/call/status`, {
        method: 'POST',
        headers: { authorization: `Bearer ${failed.token}` },
      });
      expect(res.status).toBe(409);
      expect(await res.json()).toMatchObject({ ok: false, error: { code: 'library-locked' } });
      const media = await fetch(`${failed.origin}/media/thumb/1?token=${failed.token}`);
      expect(media.status).toBe(409);
    } finally {
      await failed.close();
    }
  });
});
