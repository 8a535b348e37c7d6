import { contextBridge, ipcRenderer, webUtils } from 'electron';
import type { Answer, SagasuBridge } from '../contract/index.ts';
import { CHANNELS, type EventMessage } from './bridge.ts';

/**
 * Runs sandboxed, before the renderer: the page gets these four functions and nothing else (no ipcRenderer,
 * no Node). Built to CommonJS (build.ts) because a sandboxed preload cannot load ES modules.
 */
const bridge: SagasuBridge = {
  async invoke(method, input) {
    const answer = (await ipcRenderer.invoke(CHANNELS.invoke, method, input)) as Answer;
    if (answer.ok) return answer.result as never;
    throw answer.error;
  },
  on(event, listener) {
    const forward = (_event: unknown, message: EventMessage) => {
      if (message.event === event) listener(message.payload as never);
    };
    ipcRenderer.on(CHANNELS.event, forward);
    return () => {
      ipcRenderer.removeListener(CHANNELS.event, forward);
    };
  },
  pickFolder: () => ipcRenderer.invoke(CHANNELS.pickFolder) as Promise<string | null>,
  pathForFile: (file) => webUtils.getPathForFile(file),
};

contextBridge.exposeInMainWorld('sagasu', bridge);
