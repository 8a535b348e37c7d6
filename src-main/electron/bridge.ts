import type { Events } from '../contract/index.ts';

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

export interface EventMessage<E extends keyof Events = keyof Events> {
  event: E;
  payload: Events[E];
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
