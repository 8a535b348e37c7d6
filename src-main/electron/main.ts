import { join } from 'node:path';
import { app, type BrowserWindow, dialog, ipcMain, protocol, session } from 'electron';
import { argvBytes, LONG_ARGV } from '../cli/argv.ts';
import { toApiError } from '../contract/index.ts';
import {
  bootstrapLibrary,
  defaultLibraryDir,
  deferredEngine,
  ensureRenderer,
  rendererDir,
  sampleLibraryDir,
} from '../doors/index.ts';
import { openEngineWorker } from '../engine/api/index.ts';
import { buildPreload, preloadOut, preloadStale } from './build.ts';
import { forwardEvents, registerIpc } from './ipc.ts';
import { registerProtocols, registerSchemes } from './protocol.ts';
import { createMainWindow, hardenContents, lockDownSession } from './window.ts';

// Before `ready`: the schemes must be known to Chromium before any page exists.
registerSchemes(protocol);
app.enableSandbox();
app.on('web-contents-created', (_event, contents) => hardenContents(contents));

async function start(): Promise<void> {
  await app.whenReady();
  lockDownSession(session.defaultSession);
  // From a checkout, `npm start` builds what is missing; an installed app ships both built.
  if (!app.isPackaged) ensureRenderer((line) => console.error(`sagasu: ${line}`));
  // An installed app keeps models, the renderer and the demo photos beside app.asar (extraResources).
  const resources = app.isPackaged ? process.resourcesPath : undefined;
  const libraryDir = defaultLibraryDir();
  // Inside an installed app the checkout's .cache would lie in the read-only app archive; the engine worker
  // reads this variable when it starts.
  if (resources) {
    process.env.SAGASU_CACHE_DIR ??= join(app.getPath('userData'), 'cache');
    process.env.SAGASU_MODELS_DIR ??= join(resources, 'models');
  }
  // The engine runs in a worker thread: CNN batches and database writes never stall the window. The window
  // opens while the models load; calls made meanwhile wait for the engine. The model set is the library's own
  // setting (chosen in the window, or by sagasu index/serve --model-set): the engine reads it from the catalog.
  const opening = openEngineWorker({ libraryDir, watch: true });
  const engine = deferredEngine(opening);
  registerProtocols(protocol, engine, resources ? join(resources, 'renderer') : rendererDir);

  let window: BrowserWindow | null = null;
  registerIpc(ipcMain, engine, {
    async pickFolder() {
      const options = { properties: ['openDirectory' as const] };
      const picked = window
        ? await dialog.showOpenDialog(window, options)
        : await dialog.showOpenDialog(options);
      return picked.canceled ? null : (picked.filePaths[0] ?? null);
    },
  });

  const preload = !app.isPackaged && preloadStale() ? await buildPreload() : preloadOut;
  window = createMainWindow(preload);
  const stopEvents = forwardEvents(engine, (channel, message) => {
    if (window && !window.isDestroyed()) window.webContents.send(channel, message);
  });

  app.on('second-instance', () => {
    if (!window || window.isDestroyed()) return;
    if (window.isMinimized()) window.restore();
    window.focus();
  });
  app.on('window-all-closed', () => app.quit());
  let closed = false;
  app.on('will-quit', (event) => {
    if (closed) return;
    // Let the engine finish its write and release the library lock before the process goes.
    event.preventDefault();
    stopEvents();
    void engine.close().finally(() => {
      closed = true;
      app.quit();
    });
  });

  try {
    await opening;
  } catch (error) {
    const { code, message } = toApiError(error);
    // No better-sqlite3 for Electron's ABI is the checkout's state, not the library's: the window stays, and its
    // banner shows this error (every call carries it) with the command that fixes it.
    if (code === 'native-module') {
      console.error(`sagasu: ${message}`);
      return;
    }
    dialog.showErrorBox('Sagasu cannot open its library', `${libraryDir}\n\n${message}`);
    app.exit(1);
    return;
  }

  const first = await bootstrapLibrary(engine, { libraryDir, demoDir: sampleLibraryDir(resources) });
  if (first.added) console.log(`sagasu: ${first.reason}`);
}

if (argvBytes(process.argv) > LONG_ARGV) {
  // onnxruntime crashes on a long command line (README, "Known issues"), and the window takes no arguments of
  // its own: a start with many (a pile of files dropped on the launcher) starts again without them.
  app.relaunch({ args: process.argv.slice(1, process.defaultApp ? 2 : 1) });
  app.exit(0);
} else if (app.requestSingleInstanceLock()) {
  // One window per library: a second start focuses the first instead of fighting over the library lock.
  start().catch((error) => {
    console.error(error);
    app.exit(1);
  });
} else {
  app.quit();
}
