import type { IpcMain, IpcMainInvokeEvent } from 'electron';
import { type Events, type Method, methods, parseInput, toApiError } from '../contract/index.ts';
import type { EngineHost } from '../engine/api/index.ts';
import { CHANNELS, type EventMessage, type IpcAnswer, isAppUrl } from './bridge.ts';

const EVENTS: Array<keyof Events> = ['index.progress', 'library.changed'];

/** Only our own page may call: a frame from anywhere else (there should be none) is refused. */
export function trustedSender(event: Pick<IpcMainInvokeEvent, 'senderFrame'>): boolean {
  const url = event.senderFrame?.url;
  return typeof url === 'string' && isAppUrl(url);
}

/** One call from the renderer: the method must exist and the input must pass its schema before the engine sees it. */
export async function handleInvoke(
  engine: Pick<EngineHost, 'invoke'>,
  event: Pick<IpcMainInvokeEvent, 'senderFrame'>,
  method: unknown,
  input: unknown,
): Promise<IpcAnswer> {
  if (!trustedSender(event)) {
    return {
      ok: false,
      error: { code: 'forbidden', subject: 'sender', message: 'calls come from the app only' },
    };
  }
  if (typeof method !== 'string' || !Object.hasOwn(methods, method)) {
    return {
      ok: false,
      error: {
        code: 'unknown-method',
        subject: 'method',
        message: `there is no method ${JSON.stringify(method)}`,
      },
    };
  }
  try {
    parseInput(method as Method, input);
    return { ok: true, result: await engine.invoke(method as Method, input as never) };
  } catch (error) {
    return { ok: false, error: toApiError(error) };
  }
}

export interface IpcOptions {
  /** Shows the system folder picker; null when cancelled. */
  pickFolder(): Promise<string | null>;
}

export function registerIpc(ipcMain: Pick<IpcMain, 'handle'>, engine: EngineHost, options: IpcOptions): void {
  ipcMain.handle(CHANNELS.invoke, (event, method: unknown, input: unknown) =>
    handleInvoke(engine, event, method, input),
  );
  ipcMain.handle(CHANNELS.pickFolder, (event) => (trustedSender(event) ? options.pickFolder() : null));
}

/** Engine events to the window; returns the function that stops forwarding. */
export function forwardEvents(
  engine: Pick<EngineHost, 'on'>,
  send: (channel: string, message: EventMessage) => void,
): () => void {
  const off = EVENTS.map((event) =>
    engine.on(event, (payload) => send(CHANNELS.event, { event, payload } as EventMessage)),
  );
  return () => {
    for (const stop of off) stop();
  };
}
