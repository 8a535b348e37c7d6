import type { IpcMain, IpcMainInvokeEvent } from 'electron';
import { type Answer, EVENT_NAMES } from '../contract/index.ts';
import { callMethod } from '../doors/index.ts';
import type { EngineHost } from '../engine/api/index.ts';
import { CHANNELS, type EventMessage, isAppUrl } from './bridge.ts';

/** Only our own page may call: a frame from anywhere else (there should be none) is refused. */
export function trustedSender(event: Pick<IpcMainInvokeEvent, 'senderFrame'>): boolean {
  const url = event.senderFrame?.url;
  return typeof url === 'string' && isAppUrl(url);
}

/** One call from the renderer, answered only when it comes from the app's own page. */
export async function handleInvoke(
  engine: Pick<EngineHost, 'invoke'>,
  event: Pick<IpcMainInvokeEvent, 'senderFrame'>,
  method: unknown,
  input: unknown,
): Promise<Answer> {
  if (!trustedSender(event)) {
    return {
      ok: false,
      error: { code: 'forbidden', subject: 'sender', message: 'calls come from the app only' },
    };
  }
  return callMethod(engine, method, input);
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
  const off = EVENT_NAMES.map((event) =>
    engine.on(event, (payload) => send(CHANNELS.event, { event, payload } as EventMessage)),
  );
  return () => {
    for (const stop of off) stop();
  };
}
