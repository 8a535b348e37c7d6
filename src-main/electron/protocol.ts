import { readFile } from 'node:fs/promises';
import { extname, relative, resolve, sep } from 'node:path';
import type { Protocol } from 'electron';
import { type ApiError, photoMime, toApiError } from '../contract/index.ts';
import { contentSecurityPolicy } from '../doors/index.ts';
import type { EngineHost } from '../engine/api/index.ts';
import { ArgumentError, httpStatus } from '../engine/errors.ts';
import { APP_SCHEME, isAppUrl, MEDIA_SCHEME } from './bridge.ts';

/**
 * Both schemes are "standard" (URLs parse like http: host, path, query) and "secure" (the page counts as a
 * secure context); neither bypasses the CSP.
 */
export const PRIVILEGED_SCHEMES = [
  { scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } },
  { scheme: MEDIA_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } },
];

/** The window's CSP: its own files, media of indexed photos, nothing from the network. */
export const WINDOW_CSP = contentSecurityPolicy({ img: [`${MEDIA_SCHEME}:`] });

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.txt': 'text/plain; charset=utf-8',
};

export interface MediaRequest {
  kind: 'thumb' | 'full';
  imageId: number;
  size?: number;
}

/** `sagasu-media://thumb/<id>?size=<px>` or `sagasu-media://full/<id>`: an id, never a path. */
export function parseMediaUrl(url: string): MediaRequest {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ArgumentError('url', 'not a media URL');
  }
  if (parsed.protocol !== `${MEDIA_SCHEME}:`) throw new ArgumentError('url', 'not a media URL');
  const kind = parsed.hostname;
  if (kind !== 'thumb' && kind !== 'full') throw new ArgumentError('kind', 'media is thumb or full');
  const id = parsed.pathname.replace(/^\//, '');
  if (!/^[1-9]\d{0,14}$/.test(id)) throw new ArgumentError('imageId', 'expected a photo id');
  const sizeText = parsed.searchParams.get('size');
  if (sizeText === null) return { kind, imageId: Number(id) };
  const size = Number(sizeText);
  if (!Number.isInteger(size) || size < 16 || size > 2048)
    throw new ArgumentError('size', 'expected a whole number of pixels from 16 to 2048');
  return { kind, imageId: Number(id), size };
}

function refusal(error: ApiError): Response {
  return new Response(JSON.stringify({ ok: false, error }), {
    status: httpStatus(error.code),
    headers: { 'content-type': 'application/json' },
  });
}

export async function mediaResponse(engine: Pick<EngineHost, 'media'>, url: string): Promise<Response> {
  try {
    const { kind, imageId, size } = parseMediaUrl(url);
    const media = await engine.media(imageId, kind, size);
    return new Response(new Uint8Array(media.bytes), {
      status: 200,
      headers: { 'content-type': media.type, 'cache-control': 'private, max-age=3600' },
    });
  } catch (error) {
    return refusal(toApiError(error));
  }
}

/** `sagasu-app://renderer/<file>`: a file inside the built renderer, never outside it. */
export function resolveAppFile(rendererDir: string, url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ArgumentError('url', 'not an app URL');
  }
  if (!isAppUrl(url)) throw new ArgumentError('url', 'not an app URL');
  let path: string;
  try {
    path = decodeURIComponent(parsed.pathname);
  } catch {
    throw new ArgumentError('url', 'malformed path');
  }
  if (path === '/' || path === '') path = '/index.html';
  if (/[\\\0]/.test(path) || path.split('/').includes('..'))
    throw new ArgumentError('url', 'paths may not leave the app');
  const root = resolve(rendererDir);
  const file = resolve(root, `.${path}`);
  const inside = relative(root, file);
  if (inside === '' || inside.startsWith('..') || inside.startsWith(sep))
    throw new ArgumentError('url', 'paths may not leave the app');
  return file;
}

export async function appFileResponse(rendererDir: string, url: string): Promise<Response> {
  let file: string;
  try {
    file = resolveAppFile(rendererDir, url);
  } catch (error) {
    return refusal(toApiError(error));
  }
  try {
    const bytes = await readFile(file);
    const type = TYPES[extname(file).toLowerCase()] ?? photoMime(file) ?? 'application/octet-stream';
    const headers: Record<string, string> = { 'content-type': type, 'x-content-type-options': 'nosniff' };
    if (type.startsWith('text/html')) headers['content-security-policy'] = WINDOW_CSP;
    return new Response(new Uint8Array(bytes), { status: 200, headers });
  } catch {
    return refusal({ code: 'not-found', subject: new URL(url).pathname, message: 'no such file in the app' });
  }
}

/** Must run before the app is ready. */
export function registerSchemes(protocol: Pick<Protocol, 'registerSchemesAsPrivileged'>): void {
  protocol.registerSchemesAsPrivileged(PRIVILEGED_SCHEMES);
}

export function registerProtocols(
  protocol: Pick<Protocol, 'handle'>,
  engine: Pick<EngineHost, 'media'>,
  rendererDir: string,
): void {
  protocol.handle(MEDIA_SCHEME, (request) =>
    request.method === 'GET'
      ? mediaResponse(engine, request.url)
      : refusal({ code: 'invalid-argument', subject: 'method', message: 'media is read-only' }),
  );
  protocol.handle(APP_SCHEME, (request) =>
    request.method === 'GET'
      ? appFileResponse(rendererDir, request.url)
      : refusal({ code: 'invalid-argument', subject: 'method', message: 'the app files are read-only' }),
  );
}
