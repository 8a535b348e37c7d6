import { parentPort, workerData } from 'node:worker_threads';
import { EVENT_NAMES, toApiError } from '../../contract/index.ts';
import { Engine, type EngineOptions } from './engine.ts';
import type { WorkerMessage, WorkerRequest } from './worker.ts';

const port = parentPort;
if (!port) throw new Error('worker-entry.ts runs only as a worker thread (see worker.ts)');
const send = (message: WorkerMessage, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

try {
  const engine = await Engine.open((workerData as { options: EngineOptions }).options);
  for (const event of EVENT_NAMES) engine.on(event, (payload) => send({ type: 'event', event, payload }));
  port.on('message', async (request: WorkerRequest) => {
    try {
      switch (request.type) {
        case 'call':
          send({
            type: 'result',
            id: request.id,
            ok: true,
            result: await engine.invoke(request.method, request.input as never),
          });
          break;
        case 'media': {
          const { bytes, type } = await engine.media(request.imageId, request.kind, request.size);
          const copy = new Uint8Array(bytes);
          send({ type: 'result', id: request.id, ok: true, result: { bytes: copy, type } }, [copy.buffer]);
          break;
        }
        case 'whenIdle':
          send({ type: 'result', id: request.id, ok: true, result: await engine.whenIdle() });
          break;
        case 'close':
          await engine.close();
          send({ type: 'result', id: request.id, ok: true, result: null });
          port.close();
          break;
      }
    } catch (error) {
      send({ type: 'result', id: request.id, ok: false, error: toApiError(error) });
    }
  });
  send({ type: 'ready' });
} catch (error) {
  send({ type: 'open-failed', error: toApiError(error) });
}
