import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseInput } from '../src-main/contract/index.ts';
import type { EngineHost } from '../src-main/engine/api/index.ts';
import { SagasuError } from '../src-main/engine/errors.ts';

/**
 * The Electron binary cannot be downloaded here, so the main-process code runs against a recorded `electron`:
 * what the window is created with, what its contents refuse, what IPC and the protocols answer.
 */
const recorded = vi.hoisted(() => ({
  windows: [] as Array<{ options: Record<string, unknown>; loaded: string[] }>,
  exposed: new Map<string, unknown>(),
  ipcInvoke: (..._args: unknown[]): Promise<unknown> => Promise.resolve(undefined),
  ipcListeners: new Map<string, Array<(...args: unknown[]) => void>>(),
}));

vi.mock('electron', () => {
  class FakeContents {
    readonly handlers = new Map<string, (...args: unknown[]) => unknown>();
    openHandler: ((details: { url: string }) => unknown) | null = null;
    on(event: string, handler: (...args: unknown[]) => unknown) {
      this.handlers.set(event, handler);
      return this;
    }
    setWindowOpenHandler(handler: (details: { url: string }) => unknown) {
      this.openHandler = handler;
    }
  }
  class BrowserWindow {
    readonly webContents = new FakeContents();
    readonly loaded: string[] = [];
    constructor(readonly options: Record<string, unknown>) {
      recorded.windows.push(this);
    }
    once() {
      return this;
    }
    loadURL(url: string) {
      this.loaded.push(url);
      return Promise.resolve();
    }
  }
  return {
    BrowserWindow,
    contextBridge: { exposeInMainWorld: (key: string, api: unknown) => recorded.exposed.set(key, api) },
    ipcRenderer: {
      invoke: (...args: unknown[]) => recorded.ipcInvoke(...args),
      on: (channel: string, listener: (...args: unknown[]) => void) => {
        recorded.ipcListeners.set(channel, [...(recorded.ipcListeners.get(channel) ?? []), listener]);
      },
      removeListener: (channel: string, listener: (...args: unknown[]) => void) => {
        recorded.ipcListeners.set(
          channel,
          (recorded.ipcListeners.get(channel) ?? []).filter((l) => l !== listener),
        );
      },
    },
    webUtils: { getPathForFile: (file: { name: string }) => `/dropped/${file.name}` },
  };
});

const { APP_ENTRY, CHANNELS } = await import('../src-main/electron/bridge.ts');
const { createMainWindow, hardenContents, lockDownSession, isAllowedRequest } = await import(
  '../src-main/electron/window.ts'
);
const { handleInvoke, registerIpc, forwardEvents } = await import('../src-main/electron/ipc.ts');
const { appFileResponse, mediaResponse, parseMediaUrl, registerProtocols, WINDOW_CSP } = await import(
  '../src-main/electron/protocol.ts'
);

type Contents = {
  handlers: Map<string, (...args: unknown[]) => unknown>;
  openHandler: ((details: { url: string }) => unknown) | null;
};

const appFrame = { senderFrame: { url: APP_ENTRY } } as never;

/** Validates like the real engine and records what reached it: transport only. */
function recordingEngine(): EngineHost & {
  calls: Array<{ method: string; input: unknown }>;
  listeners: Map<string, (payload: unknown) => void>;
} {
  const calls: Array<{ method: string; input: unknown }> = [];
  const listeners = new Map<string, (payload: unknown) => void>();
  return {
    calls,
    listeners,
    async invoke(method: string, input: unknown) {
      calls.push({ method, input: parseInput(method as never, input) });
      return { answered: method } as never;
    },
    on(event: string, listener: (payload: never) => void) {
      listeners.set(event, listener as (payload: unknown) => void);
      return () => {
        listeners.delete(event);
      };
    },
    async media(imageId: number, kind: 'thumb' | 'full', size?: number) {
      if (imageId !== 7)
        throw new SagasuError('not-found', `image ${imageId}`, 'no such photo in the library');
      return { bytes: Buffer.from(`${kind}-${size ?? 'full'}`), type: 'image/jpeg' };
    },
    whenIdle: async () => ({}) as never,
    async close() {},
  };
}

describe('electron window', () => {
  beforeEach(() => {
    recorded.windows.length = 0;
  });

  it('is created sandboxed, isolated, without Node, and loads only the app entry', () => {
    createMainWindow('/app/dist/electron/preload.cjs');
    expect(recorded.windows).toHaveLength(1);
    const window = recorded.windows[0];
    const prefs = window?.options.webPreferences as Record<string, unknown>;
    expect(prefs).toMatchObject({
      preload: '/app/dist/electron/preload.cjs',
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
    });
    expect(window?.loaded).toEqual(['sagasu-app://renderer/index.html']);
  });

  it('blocks navigation away from the app, new windows and webviews', () => {
    createMainWindow('/p.cjs');
    const contents = (recorded.windows[0] as unknown as { webContents: Contents }).webContents;
    const navigate = contents.handlers.get('will-navigate');
    const redirect = contents.handlers.get('will-redirect');
    expect(navigate).toBeTypeOf('function');
    for (const url of ['https://evil.example/', 'file:///etc/passwd', 'sagasu-app://other/index.html', 'x']) {
      for (const handler of [navigate, redirect]) {
        const event = { preventDefault: vi.fn() };
        handler?.(event, url);
        expect(event.preventDefault, url).toHaveBeenCalled();
      }
    }
    const own = { preventDefault: vi.fn() };
    navigate?.(own, 'sagasu-app://renderer/index.html#/photo/3');
    expect(own.preventDefault).not.toHaveBeenCalled();

    const frame = { url: 'https://evil.example/', preventDefault: vi.fn() };
    contents.handlers.get('will-frame-navigate')?.(frame);
    expect(frame.preventDefault).toHaveBeenCalled();

    expect(contents.openHandler?.({ url: 'https://evil.example/' })).toEqual({ action: 'deny' });
    expect(contents.openHandler?.({ url: APP_ENTRY })).toEqual({ action: 'deny' });
    const webview = { preventDefault: vi.fn() };
    contents.handlers.get('will-attach-webview')?.(webview);
    expect(webview.preventDefault).toHaveBeenCalled();
  });

  it('hardens any other web contents the same way', () => {
    const contents = { handlers: new Map(), openHandler: null } as Contents & Record<string, unknown>;
    Object.assign(contents, {
      on: (e: string, h: (...args: unknown[]) => unknown) => contents.handlers.set(e, h),
      setWindowOpenHandler: (h: Contents['openHandler']) => {
        contents.openHandler = h;
      },
    });
    hardenContents(contents as never);
    expect([...contents.handlers.keys()]).toEqual(
      expect.arrayContaining(['will-navigate', 'will-redirect', 'will-attach-webview']),
    );
    expect(contents.openHandler?.({ url: 'about:blank' })).toEqual({ action: 'deny' });
  });

  it('denies permissions and every request outside the app schemes (no remote content)', () => {
    let permission: ((...args: unknown[]) => void) | undefined;
    let check: (() => boolean) | undefined;
    let before: ((details: { url: string }, cb: (r: { cancel: boolean }) => void) => void) | undefined;
    lockDownSession({
      setPermissionRequestHandler: (h: typeof permission) => {
        permission = h;
      },
      setPermissionCheckHandler: (h: typeof check) => {
        check = h;
      },
      webRequest: {
        onBeforeRequest: (h: typeof before) => {
          before = h;
        },
      },
    } as never);
    const granted = vi.fn();
    permission?.({}, 'media', granted);
    expect(granted).toHaveBeenCalledWith(false);
    expect(check?.()).toBe(false);
    const verdict = (url: string) => {
      let cancel: boolean | undefined;
      before?.({ url }, (r) => {
        cancel = r.cancel;
      });
      return cancel;
    };
    expect(verdict('https://cdn.example/x.js')).toBe(true);
    expect(verdict('http://127.0.0.1:8080/')).toBe(true);
    expect(verdict('file:///etc/passwd')).toBe(true);
    expect(verdict('ws://127.0.0.1:1/')).toBe(true);
    expect(verdict('sagasu-app://renderer/assets/index.js')).toBe(false);
    expect(verdict('sagasu-media://thumb/3?size=256')).toBe(false);
    expect(isAllowedRequest('data:image/png;base64,AA==')).toBe(true);
  });
});

describe('electron IPC', () => {
  it('refuses input that fails the contract, naming the field', async () => {
    const engine = recordingEngine();
    const cases: Array<[string, unknown, string]> = [
      ['search', { query: 5 }, 'search.query'],
      ['search', { query: 'dogs', k: 0 }, 'search.k'],
      ['roots.add', { path: '' }, 'roots.add.path'],
      ['image.get', { imageId: '3' }, 'image.get.imageId'],
      ['xmp.write', { imageIds: [] }, 'xmp.write.imageIds'],
      ['status', { extra: 1 }, 'status'],
      ['similar', { imageId: 1, path: '/x.jpg' }, 'similar'],
    ];
    for (const [method, input, subject] of cases) {
      const answer = await handleInvoke(engine, appFrame, method, input);
      expect(answer, `${method} ${JSON.stringify(input)}`).toMatchObject({
        ok: false,
        error: { code: 'invalid-argument', subject },
      });
    }
    expect(engine.calls).toHaveLength(0);
  });

  it('refuses unknown methods and senders other than the app', async () => {
    const engine = recordingEngine();
    for (const method of ['fs.readFile', '__proto__', 'toString', 42, null, { method: 'status' }]) {
      const answer = await handleInvoke(engine, appFrame, method, {});
      expect(answer).toMatchObject({ ok: false, error: { code: 'unknown-method' } });
    }
    for (const url of ['https://evil.example/', 'file:///tmp/x.html', '']) {
      const answer = await handleInvoke(engine, { senderFrame: { url } } as never, 'status', {});
      expect(answer).toMatchObject({ ok: false, error: { code: 'forbidden', subject: 'sender' } });
    }
    expect(await handleInvoke(engine, { senderFrame: null } as never, 'status', {})).toMatchObject({
      ok: false,
    });
    expect(engine.calls).toHaveLength(0);
  });

  it('passes a valid call through and answers with the result', async () => {
    const engine = recordingEngine();
    const handlers = new Map<string, (...args: unknown[]) => unknown>();
    const pickFolder = vi.fn(async () => '/photos');
    registerIpc(
      { handle: (channel: string, h: never) => handlers.set(channel, h) } as never,
      engine as never,
      {
        pickFolder,
      },
    );
    const invoke = handlers.get(CHANNELS.invoke);
    expect(await invoke?.(appFrame, 'search', { query: 'a dog', k: 3 })).toEqual({
      ok: true,
      result: { answered: 'search' },
    });
    expect(engine.calls[0]?.input).toMatchObject({ query: 'a dog', k: 3, offset: 0 });
    expect(await handlers.get(CHANNELS.pickFolder)?.(appFrame)).toBe('/photos');
    expect(
      await handlers.get(CHANNELS.pickFolder)?.({ senderFrame: { url: 'https://x.example/' } }),
    ).toBeNull();
    expect(pickFolder).toHaveBeenCalledTimes(1);
  });

  it('forwards engine events to the window until stopped', () => {
    const engine = recordingEngine();
    const sent: unknown[] = [];
    const stop = forwardEvents(engine as never, (channel, message) => sent.push([channel, message]));
    engine.listeners.get('library.changed')?.({ imageIds: [1, 2] });
    expect(sent).toEqual([[CHANNELS.event, { event: 'library.changed', payload: { imageIds: [1, 2] } }]]);
    stop();
    expect(engine.listeners.size).toBe(0);
  });
});

describe('electron preload', () => {
  it('exposes exactly window.sagasu with invoke, on, pickFolder and pathForFile', async () => {
    await import('../src-main/electron/preload.ts');
    expect([...recorded.exposed.keys()]).toEqual(['sagasu']);
    const api = recorded.exposed.get('sagasu') as Record<string, (...args: unknown[]) => unknown>;
    expect(Object.keys(api).sort()).toEqual(['invoke', 'on', 'pathForFile', 'pickFolder']);

    recorded.ipcInvoke = async (channel, method) =>
      channel === CHANNELS.invoke && method === 'status'
        ? { ok: true, result: { roots: [] } }
        : { ok: false, error: { code: 'invalid-argument', subject: 'search.query', message: 'bad' } };
    expect(await api.invoke?.('status', {})).toEqual({ roots: [] });
    await expect(api.invoke?.('search', { query: 1 })).rejects.toEqual({
      code: 'invalid-argument',
      subject: 'search.query',
      message: 'bad',
    });

    const seen: unknown[] = [];
    const off = api.on?.('index.progress', (p: unknown) => seen.push(p)) as () => void;
    const deliver = (message: unknown) => {
      for (const l of recorded.ipcListeners.get(CHANNELS.event) ?? []) l({}, message);
    };
    deliver({ event: 'index.progress', payload: { done: 1 } });
    deliver({ event: 'library.changed', payload: { imageIds: null } });
    off();
    deliver({ event: 'index.progress', payload: { done: 2 } });
    expect(seen).toEqual([{ done: 1 }]);
    expect(api.pathForFile?.({ name: 'cat.jpg' })).toBe('/dropped/cat.jpg');
  });
});

describe('electron protocols', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sagasu-electron-'));
    await mkdir(join(dir, 'renderer', 'assets'), { recursive: true });
    await writeFile(join(dir, 'renderer', 'index.html'), '<!doctype html><title>Sagasu</title>');
    await writeFile(join(dir, 'renderer', 'assets', 'app.js'), 'console.log(1)');
    await writeFile(join(dir, 'secret.txt'), 'outside the renderer');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('parses media URLs to an id and refuses anything else', () => {
    expect(parseMediaUrl('sagasu-media://thumb/12?size=256')).toEqual({
      kind: 'thumb',
      imageId: 12,
      size: 256,
    });
    expect(parseMediaUrl('sagasu-media://full/3')).toEqual({ kind: 'full', imageId: 3 });
    const refused: Array<[string, string]> = [
      ['sagasu-media://thumb/..%2F..%2Fetc%2Fpasswd', 'imageId'],
      ['sagasu-media://full/%2Fetc%2Fpasswd', 'imageId'],
      ['sagasu-media://full/../../etc/passwd', 'imageId'],
      ['sagasu-media://etc/passwd', 'kind'],
      ['sagasu-media://thumb/0', 'imageId'],
      ['sagasu-media://thumb/1?size=1e9', 'size'],
      ['file:///etc/passwd', 'url'],
    ];
    for (const [url, subject] of refused) {
      expect(() => parseMediaUrl(url), url).toThrow(expect.objectContaining({ subject }));
    }
  });

  it('serves media of indexed photos only: unknown ids are 404, traversal 400', async () => {
    const engine = recordingEngine();
    const ok = await mediaResponse(engine, 'sagasu-media://thumb/7?size=128');
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toBe('image/jpeg');
    expect(await ok.text()).toBe('thumb-128');
    const unknown = await mediaResponse(engine, 'sagasu-media://full/8');
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({
      ok: false,
      error: { code: 'not-found', subject: 'image 8' },
    });
    expect((await mediaResponse(engine, 'sagasu-media://thumb/..%2F..%2Fetc%2Fpasswd')).status).toBe(400);
    expect((await mediaResponse(engine, 'sagasu-media://full/%2Fetc%2Fpasswd')).status).toBe(400);
  });

  it("serves the app's own files with the CSP, nothing outside the renderer folder", async () => {
    const renderer = join(dir, 'renderer');
    const index = await appFileResponse(renderer, 'sagasu-app://renderer/index.html');
    expect(index.status).toBe(200);
    expect(index.headers.get('content-security-policy')).toBe(WINDOW_CSP);
    expect(WINDOW_CSP).toContain('img-src');
    expect(WINDOW_CSP).toContain('sagasu-media:');
    expect(WINDOW_CSP).not.toMatch(/script-src[^;]*(unsafe|https?:)/);
    expect(await (await appFileResponse(renderer, 'sagasu-app://renderer/')).text()).toContain('Sagasu');
    const script = await appFileResponse(renderer, 'sagasu-app://renderer/assets/app.js');
    expect(script.headers.get('content-type')).toMatch(/^text\/javascript/);
    for (const url of [
      'sagasu-app://renderer/../secret.txt',
      'sagasu-app://renderer/%2e%2e/secret.txt',
      'sagasu-app://renderer/..%2fsecret.txt',
      'sagasu-app://renderer/assets/..%5c..%5csecret.txt',
      'sagasu-app://renderer/%00index.html',
      'sagasu-app://elsewhere/index.html',
      'sagasu-app://renderer/nope.js',
    ]) {
      const res = await appFileResponse(renderer, url);
      expect([400, 404], url).toContain(res.status);
      expect(await res.text()).not.toContain('outside the renderer');
    }
  });

  it('registers both schemes and refuses writes', async () => {
    const handlers = new Map<string, (request: Request) => Promise<Response> | Response>();
    registerProtocols(
      { handle: (scheme: string, h: never) => handlers.set(scheme, h) } as never,
      recordingEngine(),
      join(dir, 'renderer'),
    );
    expect([...handlers.keys()].sort()).toEqual(['sagasu-app', 'sagasu-media']);
    const media = handlers.get('sagasu-media');
    const get = await media?.({ method: 'GET', url: 'sagasu-media://thumb/7?size=64' } as Request);
    expect(get?.status).toBe(200);
    const post = await media?.({ method: 'POST', url: 'sagasu-media://thumb/7' } as Request);
    expect(post?.status).toBe(400);
  });
});

describe('electron preload bundle', () => {
  it('is one CommonJS file that requires nothing but electron (a sandboxed preload can load no more)', async () => {
    const { buildPreload } = await import('../src-main/electron/build.ts');
    const dir = await mkdtemp(join(tmpdir(), 'sagasu-preload-'));
    try {
      const out = await buildPreload(join(dir, 'preload.cjs'));
      const code = await readFile(out, 'utf8');
      const required = [...code.matchAll(/require\(["']([^"']+)["']\)/g)].map((m) => m[1]);
      expect(required).toEqual(['electron']);
      expect(code).not.toMatch(/^\s*(import|export)\s/m);
      expect(code).toContain('exposeInMainWorld("sagasu"');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

const { rendererDir } = await import('../src-main/doors/index.ts');
const builtRenderer = existsSync(join(rendererDir, 'index.html'))
  ? ''
  : ' [skipped: the renderer is not built; npm run build:renderer]';

describe(`the built renderer through sagasu-app://${builtRenderer}`, () => {
  it.skipIf(builtRenderer !== '')('serves index.html and every script and stylesheet it names', async () => {
    const index = await appFileResponse(rendererDir, APP_ENTRY);
    expect(index.status).toBe(200);
    const html = await index.text();
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)]
      .map((m) => m[1] as string)
      .filter((ref) => !ref.startsWith('data:'));
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      const url = new URL(ref, APP_ENTRY).href;
      const res = await appFileResponse(rendererDir, url);
      expect(res.status, url).toBe(200);
      expect(res.headers.get('content-type'), url).toMatch(/^(text\/javascript|text\/css|image\/)/);
    }
    // Nothing in the page may load from outside the app: the window's CSP and request filter would block it.
    expect(html).not.toMatch(/(?:src|href)="(?:https?:)?\/\//);
  });
});
