import type {
  Events,
  Input,
  Method,
  Output,
  SagasuApi,
  SagasuBridge,
  SearchPage,
} from '../../src-main/contract/index.ts';
import {
  asClientError,
  ClientError,
  callPath,
  decodeResponse,
  electronMediaUrl,
  eventsUrl,
  hashWithoutToken,
  httpMediaPath,
  type MediaKind,
  tokenFromHash,
} from './protocol.ts';

declare global {
  interface Window {
    /** What Electron's preload exposes through contextBridge (src-main/electron/preload.ts). */
    sagasu?: SagasuBridge;
  }
}

/** The one client every component uses; it hides which door (Electron preload or HTTP) is behind it. */
export interface Client extends SagasuApi {
  readonly door: 'electron' | 'http';
  mediaUrl(imageId: number, kind: MediaKind, size?: number): string;
  /** Photos similar to a file the person dropped (not stored in the library). */
  similarToFile(file: File, page?: { k?: number; offset?: number }): Promise<SearchPage>;
  /** The OS folder picker (Electron); null where the door has none (browser: type the path). */
  readonly pickFolder: (() => Promise<string | null>) | null;
  /** Connection state of the event stream, for the "reconnecting" line. */
  onConnection(listener: (connected: boolean) => void): () => void;
}

type Listener = (payload: unknown) => void;

class Emitter {
  private readonly listeners = new Map<string, Set<Listener>>();
  on(event: string, listener: Listener): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }
  emit(event: string, payload: unknown): void {
    for (const listener of this.listeners.get(event) ?? []) {
      try {
        listener(payload);
      } catch (error) {
        console.error(error);
      }
    }
  }
  size(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }
}

function electronClient(api: SagasuBridge): Client {
  const connection = new Emitter();
  return {
    door: 'electron',
    async invoke<M extends Method>(method: M, input: Input<M>): Promise<Output<M>> {
      try {
        return await api.invoke(method, input);
      } catch (error) {
        // The preload rejects with the ApiError object itself ({ code, subject, message }).
        throw asClientError(error);
      }
    },
    on: (event, listener) => api.on(event, listener),
    mediaUrl: electronMediaUrl,
    async similarToFile(file, page = {}) {
      const path = api.pathForFile(file);
      if (!path) throw new ClientError('invalid-argument', file.name, 'this file has no path on disk');
      return this.invoke('similar', { path, ...page });
    },
    pickFolder: () => api.pickFolder(),
    onConnection: (listener) => {
      listener(true);
      return connection.on('change', listener as Listener);
    },
  };
}

const TOKEN_KEY = 'sagasu.token';

/** The token from `#token=…` (then removed from the address bar), else the one kept for this tab. */
export function takeToken(): string {
  const fromHash = tokenFromHash(location.hash);
  if (fromHash) {
    sessionStorage.setItem(TOKEN_KEY, fromHash);
    history.replaceState(
      null,
      '',
      `${location.pathname}${location.search}${hashWithoutToken(location.hash)}`,
    );
    return fromHash;
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

function httpClient(token: string): Client {
  const events = new Emitter();
  const connection = new Emitter();
  let socket: WebSocket | null = null;
  let retry = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let connected = false;

  const setConnected = (value: boolean) => {
    if (value === connected) return;
    connected = value;
    connection.emit('change', value);
  };

  // One socket for all listeners, opened on first subscription, reconnected with backoff (the server may restart).
  const connect = () => {
    if (socket || !token) return;
    const ws = new WebSocket(eventsUrl(location, token));
    socket = ws;
    ws.onopen = () => {
      retry = 0;
      setConnected(true);
    };
    ws.onmessage = (message) => {
      try {
        const data = JSON.parse(String(message.data)) as { event?: string; payload?: unknown };
        if (typeof data.event === 'string') events.emit(data.event, data.payload);
      } catch {
        // Not ours: ignore.
      }
    };
    ws.onclose = () => {
      socket = null;
      setConnected(false);
      if (events.size() === 0) return;
      retry = Math.min(retry + 1, 6);
      timer = setTimeout(connect, 250 * 2 ** retry);
    };
  };

  const post = async <T>(path: string, body: BodyInit, contentType: string): Promise<T> => {
    let response: Response;
    try {
      response = await fetch(path, {
        method: 'POST',
        headers: { 'Content-Type': contentType, Authorization: `Bearer ${token}` },
        body,
      });
    } catch (error) {
      throw new ClientError('unreachable', 'server', error instanceof Error ? error.message : String(error));
    }
    let json: unknown = null;
    try {
      json = await response.json();
    } catch {
      // Not JSON: decodeResponse reports the HTTP status.
    }
    return decodeResponse<T>(response.status, json);
  };

  return {
    door: 'http',
    invoke<M extends Method>(method: M, input: Input<M>): Promise<Output<M>> {
      return post<Output<M>>(callPath(method), JSON.stringify(input ?? {}), 'application/json');
    },
    on<E extends keyof Events>(event: E, listener: (payload: Events[E]) => void) {
      const off = events.on(event, listener as Listener);
      connect();
      return () => {
        off();
        if (events.size() === 0) {
          clearTimeout(timer);
          socket?.close();
        }
      };
    },
    mediaUrl: (imageId, kind, size) => httpMediaPath(imageId, kind, token, size),
    async similarToFile(file, page = {}) {
      if (!file.type.startsWith('image/'))
        throw new ClientError('unsupported-format', file.name, 'this file is not an image');
      const query = new URLSearchParams();
      if (page.k !== undefined) query.set('k', String(page.k));
      if (page.offset !== undefined) query.set('offset', String(page.offset));
      const suffix = query.size ? `?${query}` : '';
      return post<SearchPage>(`/api/similar-upload${suffix}`, file, file.type);
    },
    pickFolder: null,
    onConnection: (listener) => {
      listener(connected);
      return connection.on('change', listener as Listener);
    },
  };
}

let instance: Client | undefined;

/** The app's client: the preload API inside Electron, HTTP/WebSocket in a browser. */
export function getClient(): Client {
  if (!instance) instance = window.sagasu ? electronClient(window.sagasu) : httpClient(takeToken());
  return instance;
}
