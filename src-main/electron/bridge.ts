import type { ApiError, Events, Input, Method, Output } from '../engine/api/contract.ts';

/** IPC channel names, shared by the preload and the main process. */
export const CHANNELS = {
  invoke: 'sagasu:invoke',
  event: 'sagasu:event',
  pickFolder: 'sagasu:pick-folder',
} as const;

/** The custom schemes: the renderer's own files, and media of indexed photos by id. */
export const APP_SCHEME = 'sagasu-app';
export const MEDIA_SCHEME = 'sagasu-media';
export const APP_HOST = 'renderer';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;
export const APP_ENTRY = `${APP_ORIGIN}/index.html`;

/** What an IPC call answers: errors travel as data, since Electron flattens thrown errors to a message. */
export type IpcAnswer = { ok: true; result: unknown } | { ok: false; error: ApiError };

export interface EventMessage<E extends keyof Events = keyof Events> {
  event: E;
  payload: Events[E];
}

/**
 * `window.sagasu` in the desktop app: the one API the preload exposes. A refused call rejects with an
 * ApiError object ({ code, subject, message }), the same shape the HTTP door answers with.
 */
export interface SagasuBridge {
  invoke<M extends Method>(method: M, input: Input<M>): Promise<Output<M>>;
  on<E extends keyof Events>(event: E, listener: (payload: Events[E]) => void): () => void;
  /** The folder the person picked in the system dialog, or null when cancelled. */
  pickFolder(): Promise<string | null>;
  /** The path on disk of a file dropped on the window (for "find similar"). */
  pathForFile(file: File): string;
}

/**
 * A URL of the app's own files. Compared by scheme and host: for a custom scheme Node's URL reports the
 * origin as "null", while Chromium (where the scheme is registered as standard) reports it in full.
 */
export function isAppUrl(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.protocol === `${APP_SCHEME}:` && parsed.host === APP_HOST;
  } catch {
    return false;
  }
}
