import type { ApiError, ErrorCode, Method } from '../../src-main/contract/index.ts';

/**
 * The browser door's wire format (src-main/server speaks the same): kept free of DOM types so the unit tests
 * can run it in Node.
 */

/** The engine's codes, and the two only the renderer meets: no server to talk to, an answer not ours. */
export type ClientErrorCode = ErrorCode | 'unreachable' | 'bad-response';

/** A refused or failed call as the renderer sees it; `code` picks the words shown to the person. */
export class ClientError extends Error {
  constructor(
    readonly code: ClientErrorCode,
    readonly subject: string,
    message: string,
    /** HTTP status, 0 when the server could not be reached at all. */
    readonly status = 0,
  ) {
    super(message);
    this.name = 'ClientError';
  }
}

/** The token the server printed in the URL (`#token=…`); null when the hash has none. */
export function tokenFromHash(hash: string): string | null {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  const token = params.get('token');
  return token && /^[\w.~-]{8,512}$/.test(token) ? token : null;
}

/** The hash with the token removed (other parameters kept), so it never lingers in the address bar. */
export function hashWithoutToken(hash: string): string {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  params.delete('token');
  const rest = params.toString();
  return rest ? `#${rest}` : '';
}

export function callPath(method: Method): string {
  return `/api/call/${encodeURIComponent(method)}`;
}

export function eventsUrl(location: { protocol: string; host: string }, token: string): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/api/events?token=${encodeURIComponent(token)}`;
}

export type MediaKind = 'thumb' | 'full';

/** Media by image id only: a path never appears in a media URL. */
export function httpMediaPath(imageId: number, kind: MediaKind, token: string, size?: number): string {
  const query = new URLSearchParams();
  if (kind === 'thumb' && size !== undefined) query.set('size', String(Math.round(size)));
  query.set('token', token);
  return `/media/${kind}/${imageId}?${query}`;
}

export function electronMediaUrl(imageId: number, kind: MediaKind, size?: number): string {
  const query = kind === 'thumb' && size !== undefined ? `?size=${Math.round(size)}` : '';
  return `sagasu-media://${kind}/${imageId}${query}`;
}

function isApiError(value: unknown): value is ApiError {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.code === 'string' && typeof v.message === 'string';
}

/** The server's answer `{ ok, result | error }` → the result, or a ClientError carrying the server's words. */
export function decodeResponse<T>(status: number, body: unknown): T {
  if (typeof body === 'object' && body !== null) {
    const b = body as { ok?: unknown; result?: unknown; error?: unknown };
    if (b.ok === true && status >= 200 && status < 300) return b.result as T;
    if (b.ok === false && isApiError(b.error))
      return throwError(
        new ClientError(b.error.code, String(b.error.subject ?? ''), b.error.message, status),
      );
  }
  const code = status === 401 ? 'unauthorized' : status === 404 ? 'not-found' : 'bad-response';
  throw new ClientError(code, 'server', `unexpected answer from the server (HTTP ${status})`, status);
}

function throwError(error: ClientError): never {
  throw error;
}

/** Anything thrown by a call → a ClientError (network failures become code 'unreachable'). */
export function asClientError(error: unknown): ClientError {
  if (error instanceof ClientError) return error;
  if (isApiError(error)) return new ClientError(error.code, String(error.subject ?? ''), error.message);
  const message = error instanceof Error ? error.message : String(error);
  return new ClientError('unreachable', 'server', message);
}

/** Codes the person can act on get their own sentence in the catalogue; the rest show the engine's words. */
const knownCodes = new Set<ClientErrorCode>([
  'unreachable',
  'unauthorized',
  'library-locked',
  'not-found',
  'invalid-argument',
  'unsupported-format',
  'corrupt',
  'permission-denied',
  'too-large',
  'bad-response',
]);

export function errorKey(error: ClientError): string {
  return knownCodes.has(error.code) ? `error.${error.code}` : 'error.other';
}
