import { BrowserWindow, type Session, type WebContents, type WebPreferences } from 'electron';
import { APP_ENTRY, APP_SCHEME, isAppUrl, MEDIA_SCHEME } from './bridge.ts';

/** The only schemes the window may load anything from: no http(s), no file, no remote content at all. */
const ALLOWED_SCHEMES = new Set([`${APP_SCHEME}:`, `${MEDIA_SCHEME}:`, 'data:', 'blob:', 'devtools:']);

export function secureWebPreferences(preload: string): WebPreferences {
  return {
    preload,
    contextIsolation: true,
    sandbox: true,
    nodeIntegration: false,
    nodeIntegrationInWorker: false,
    nodeIntegrationInSubFrames: false,
    webSecurity: true,
    allowRunningInsecureContent: false,
    webviewTag: false,
    experimentalFeatures: false,
    navigateOnDragDrop: false,
    safeDialogs: true,
    spellcheck: false,
  };
}

export function isAllowedRequest(url: string): boolean {
  try {
    return ALLOWED_SCHEMES.has(new URL(url).protocol);
  } catch {
    return false;
  }
}

/**
 * Every web contents (the window, and anything it might try to create): no navigation away from the app,
 * no new windows, no <webview>. A dropped file or a link cannot turn the window into a browser.
 */
export function hardenContents(contents: WebContents): void {
  const stay = (event: { preventDefault(): void }, url: string) => {
    if (!isAppUrl(url)) event.preventDefault();
  };
  contents.on('will-navigate', stay);
  // Subframes too (there should be none): this event carries the URL on the event itself.
  contents.on('will-frame-navigate', (event) => stay(event, event.url));
  contents.on('will-redirect', stay);
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
}

/** No permission prompts (camera, geolocation, notifications…) and no request leaves the app's own schemes. */
export function lockDownSession(session: Session): void {
  session.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  session.setPermissionCheckHandler(() => false);
  session.webRequest.onBeforeRequest((details, callback) => {
    callback({ cancel: !isAllowedRequest(details.url) });
  });
}

export function createMainWindow(preload: string): BrowserWindow {
  const window = new BrowserWindow({
    width: 1280,
    height: 840,
    minWidth: 720,
    minHeight: 480,
    show: false,
    title: 'Sagasu',
    backgroundColor: '#1e1e1e',
    autoHideMenuBar: true,
    webPreferences: secureWebPreferences(preload),
  });
  hardenContents(window.webContents);
  window.once('ready-to-show', () => window.show());
  void window.loadURL(APP_ENTRY);
  return window;
}
