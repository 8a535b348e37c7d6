import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { SagasuError } from '../src-main/engine/errors.ts';

/**
 * The main process's wiring, with `electron` (no binary here) and the engine worker replaced by recorders:
 * schemes before ready, sandbox for all, every contents hardened, the window, IPC, protocols, first run,
 * a clean quit, and what a library that cannot open shows.
 */
const state = vi.hoisted(() => ({
  order: [] as string[],
  appHandlers: new Map<string, (...args: unknown[]) => unknown>(),
  windows: [] as Array<{ options: { webPreferences: { preload: string } }; loaded: string[] }>,
  ipc: new Map<string, unknown>(),
  schemes: [] as unknown[],
  handled: [] as string[],
  errorBoxes: [] as string[][],
  exits: [] as number[],
  relaunches: [] as unknown[],
  quits: 0,
  openFails: null as Error | null,
  engineCalls: [] as Array<{ method: string; input: unknown }>,
  closed: 0,
  openedWith: null as unknown,
  packaged: false,
  protocolHandlers: new Map<string, (request: { method: string; url: string }) => Promise<Response>>(),
}));

vi.mock('electron', () => {
  class BrowserWindow {
    readonly loaded: string[] = [];
    readonly webContents = { on() {}, setWindowOpenHandler() {}, send() {} };
    constructor(readonly options: { webPreferences: { preload: string } }) {
      state.windows.push(this);
      state.order.push('window');
    }
    once() {}
    isDestroyed() {
      return false;
    }
    loadURL(url: string) {
      this.loaded.push(url);
      return Promise.resolve();
    }
  }
  const session = {
    setPermissionRequestHandler() {},
    setPermissionCheckHandler() {},
    webRequest: { onBeforeRequest() {} },
  };
  return {
    app: {
      get isPackaged() {
        return state.packaged;
      },
      getPath: (name: string) => `/home/ann/.config/Sagasu-${name}`,
      enableSandbox: () => state.order.push('sandbox'),
      on: (event: string, handler: (...args: unknown[]) => unknown) => state.appHandlers.set(event, handler),
      whenReady: () => {
        state.order.push('ready');
        return Promise.resolve();
      },
      requestSingleInstanceLock: () => true,
      quit: () => {
        state.quits++;
      },
      exit: (code: number) => state.exits.push(code),
      relaunch: (options: unknown) => state.relaunches.push(options),
    },
    BrowserWindow,
    dialog: {
      showErrorBox: (title: string, body: string) => state.errorBoxes.push([title, body]),
      showOpenDialog: async () => ({ canceled: true, filePaths: [] }),
    },
    ipcMain: { handle: (channel: string, handler: unknown) => state.ipc.set(channel, handler) },
    protocol: {
      registerSchemesAsPrivileged: (schemes: unknown[]) => {
        state.order.push('schemes');
        state.schemes.push(...schemes);
      },
      handle: (scheme: string, handler: (request: { method: string; url: string }) => Promise<Response>) => {
        state.handled.push(scheme);
        state.protocolHandlers.set(scheme, handler);
      },
    },
    session: { defaultSession: session },
  };
});

vi.mock('../src-main/engine/api/index.ts', async (importOriginal) => ({
  ...(await importOriginal<object>()),
  openEngineWorker: async (options: unknown) => {
    state.openedWith = options;
    state.order.push('engine');
    if (state.openFails) throw state.openFails;
    return {
      async invoke(method: string, input: unknown) {
        state.engineCalls.push({ method, input });
        if (method === 'status') return { roots: [] };
        if (method === 'roots.add') return { id: 1, path: (input as { path: string }).path };
        return {};
      },
      on: () => () => {},
      media: async () => ({ bytes: Buffer.alloc(0), type: 'image/jpeg' }),
      whenIdle: async () => ({}),
      async close() {
        state.closed++;
      },
    };
  },
}));

vi.mock('../src-main/electron/build.ts', () => ({
  preloadOut: '/app/dist/electron/preload.cjs',
  preloadStale: () => true,
  buildPreload: async () => '/built/preload.cjs',
}));
vi.mock('../src-main/doors/renderer.ts', () => ({ ensureRenderer: () => {} }));

let root: string;
let library: string;
let run = 0;
const savedLibraryDir = process.env.SAGASU_LIBRARY_DIR;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sagasu-electron-main-'));
});
afterAll(async () => {
  if (savedLibraryDir === undefined) delete process.env.SAGASU_LIBRARY_DIR;
  else process.env.SAGASU_LIBRARY_DIR = savedLibraryDir;
  await rm(root, { recursive: true, force: true });
});

beforeEach(() => {
  // A fresh library each time: first run happens once per library.
  library = join(root, `library-${++run}`);
  process.env.SAGASU_LIBRARY_DIR = library;
  vi.resetModules();
  state.order.length = 0;
  state.appHandlers.clear();
  state.windows.length = 0;
  state.ipc.clear();
  state.schemes.length = 0;
  state.handled.length = 0;
  state.errorBoxes.length = 0;
  state.exits.length = 0;
  state.relaunches.length = 0;
  state.engineCalls.length = 0;
  state.quits = 0;
  state.closed = 0;
  state.openFails = null;
  state.packaged = false;
  state.protocolHandlers.clear();
});

async function launch(): Promise<void> {
  await import('../src-main/electron/main.ts');
  // start() runs on after the import: let its awaits settle.
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('electron main process', () => {
  it('registers the schemes and the sandbox before ready, then opens the window and the engine', async () => {
    await launch();
    expect(state.order.indexOf('schemes')).toBeLessThan(state.order.indexOf('ready'));
    expect(state.order.indexOf('sandbox')).toBeLessThan(state.order.indexOf('ready'));
    expect(state.schemes).toEqual([
      expect.objectContaining({
        scheme: 'sagasu-app',
        privileges: expect.objectContaining({ standard: true, secure: true }),
      }),
      expect.objectContaining({
        scheme: 'sagasu-media',
        privileges: expect.objectContaining({ standard: true, secure: true }),
      }),
    ]);
    expect(state.appHandlers.has('web-contents-created')).toBe(true);
    // The window's engine watches the library's folders while the app runs.
    expect(state.openedWith).toEqual({ libraryDir: library, watch: true });
    expect(state.handled.sort()).toEqual(['sagasu-app', 'sagasu-media']);
    expect([...state.ipc.keys()].sort()).toEqual(['sagasu:invoke', 'sagasu:pick-folder']);
    expect(state.windows).toHaveLength(1);
    expect(state.windows[0]?.options.webPreferences.preload).toBe('/built/preload.cjs');
    expect(state.windows[0]?.loaded).toEqual(['sagasu-app://renderer/index.html']);
  });

  it('started with a command line long enough to crash onnxruntime, starts again without it', async () => {
    const saved = process.argv;
    const files = Array.from({ length: 1000 }, (_, k) => `/home/ann/Pictures/2024/holiday-${k}-camera.jpg`);
    process.argv = [saved[0] as string, ...files];
    try {
      await launch();
    } finally {
      process.argv = saved;
    }
    expect(state.relaunches).toEqual([{ args: [] }]);
    expect(state.exits).toEqual([0]);
    expect(state.order).not.toContain('engine');
    expect(state.windows).toHaveLength(0);
  });

  it('hardens every web contents created later', async () => {
    await launch();
    const contents = { events: [] as string[], opener: null as unknown };
    state.appHandlers.get('web-contents-created')?.(
      {},
      {
        on: (event: string) => contents.events.push(event),
        setWindowOpenHandler: (handler: unknown) => {
          contents.opener = handler;
        },
      },
    );
    expect(contents.events).toEqual(
      expect.arrayContaining(['will-navigate', 'will-redirect', 'will-attach-webview']),
    );
    expect((contents.opener as () => unknown)()).toEqual({ action: 'deny' });
  });

  it('offers the demo library on first run, and closes the engine before quitting', async () => {
    await launch();
    expect(state.engineCalls[0]?.method).toBe('status');
    const added = state.engineCalls.find((c) => c.method === 'roots.add');
    // Only when the demo library is built (npm run demo:build); otherwise the app starts empty.
    if (added) {
      expect((added.input as { path: string }).path).toMatch(/assets[/\\]sample-library$/);
      expect(state.engineCalls.at(-1)).toEqual({ method: 'index.start', input: { rootId: 1 } });
    }
    const quit = { preventDefault: vi.fn() };
    state.appHandlers.get('will-quit')?.(quit);
    expect(quit.preventDefault).toHaveBeenCalled();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(state.closed).toBe(1);
    expect(state.quits).toBe(1);
  });

  it('says why in a dialog and exits when the library cannot be opened', async () => {
    state.openFails = new SagasuError(
      'library-locked',
      library,
      'another Sagasu process has this library open',
    );
    await launch();
    expect(state.errorBoxes).toHaveLength(1);
    expect(state.errorBoxes[0]?.[0]).toBe('Sagasu cannot open its library');
    expect(state.errorBoxes[0]?.[1]).toContain('another Sagasu process has this library open');
    expect(state.exits).toEqual([1]);
    expect(state.engineCalls).toHaveLength(0);
  });

  it('keeps the window and lets it show what to run when better-sqlite3 has no build for Electron', async () => {
    // The modules main.ts is about to import (fresh after resetModules), as the engine worker's error would be.
    const { currentTarget, loadFailure, NativeModuleError } = await import(
      '../src-main/engine/library/sqlite.ts'
    );
    const target = currentTarget({ ...process.versions, electron: '45.5.0', modules: '150' });
    const binary = '/checkout/node_modules/better-sqlite3/build/Release/better_sqlite3.node';
    state.openFails = new NativeModuleError(
      binary,
      loadFailure(
        binary,
        new Error('compiled against a different Node.js version using NODE_MODULE_VERSION 115'),
        target,
      ),
    );
    await launch();
    expect(state.errorBoxes).toEqual([]);
    expect(state.exits).toEqual([]);
    expect(state.windows).toHaveLength(1);
    // The renderer's first call (status) gets the error its banner shows.
    const invoke = state.ipc.get('sagasu:invoke') as (
      event: unknown,
      method: string,
      input: unknown,
    ) => Promise<unknown>;
    const answer = await invoke({ senderFrame: { url: 'sagasu-app://renderer/index.html' } }, 'status', {});
    expect(answer).toEqual({
      ok: false,
      error: {
        code: 'native-module',
        subject: binary,
        message: expect.stringContaining(
          "`npm run setup` on a machine with internet fetches Electron's build",
        ),
      },
    });
  });
});

describe('electron main process, installed', () => {
  const savedResources = (process as { resourcesPath?: string }).resourcesPath;
  const savedCache = process.env.SAGASU_CACHE_DIR;
  afterAll(() => {
    (process as { resourcesPath?: string }).resourcesPath = savedResources;
    if (savedCache === undefined) delete process.env.SAGASU_CACHE_DIR;
    else process.env.SAGASU_CACHE_DIR = savedCache;
    delete process.env.SAGASU_MODELS_DIR;
  });

  it('takes models, renderer and demo photos from its resources and builds nothing', async () => {
    state.packaged = true;
    (process as { resourcesPath?: string }).resourcesPath = join(root, 'resources');
    delete process.env.SAGASU_CACHE_DIR;
    delete process.env.SAGASU_MODELS_DIR;
    await launch();
    // The model set is the library's own setting: the engine reads it, under SAGASU_MODELS_DIR.
    expect(state.openedWith).toEqual({ libraryDir: library, watch: true });
    expect(process.env.SAGASU_CACHE_DIR).toBe(join('/home/ann/.config/Sagasu-userData', 'cache'));
    // The CNN, statistics, caption bank and cutoff are read through modelsDir in the engine's worker.
    expect(process.env.SAGASU_MODELS_DIR).toBe(join(root, 'resources', 'models'));
    expect(state.windows[0]?.options.webPreferences.preload).toBe('/app/dist/electron/preload.cjs');
    // The window's files come from resources/renderer (absent here: a 404, never a file of the checkout).
    const page = await state.protocolHandlers.get('sagasu-app')?.({
      method: 'GET',
      url: 'sagasu-app://renderer/index.html',
    });
    expect(page?.status).toBe(404);
    // No demo library in these resources: first run leaves the library empty.
    expect(state.engineCalls.map((c) => c.method)).toEqual(['status']);
  });
});
