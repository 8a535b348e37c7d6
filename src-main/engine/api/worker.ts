import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import {
  type ApiError,
  type Events,
  fromApiError,
  type IndexProgress,
  type Input,
  type Method,
  type Output,
} from '../../contract/index.ts';
import { workerStart } from '../worker-start.ts';
import type { EngineHost, EngineOptions } from './engine.ts';

/** Requests the proxy sends; the worker answers each `id` once. */
export type WorkerRequest =
  | { id: number; type: 'call'; method: Method; input: unknown }
  | { id: number; type: 'media'; imageId: number; kind: 'thumb' | 'full'; size?: number }
  | { id: number; type: 'whenIdle' }
  | { id: number; type: 'close' };

/** A request before the proxy numbers it (Omit distributed over the union). */
type Unnumbered<R> = R extends unknown ? Omit<R, 'id'> : never;

export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'open-failed'; error: ApiError }
  | { type: 'result'; id: number; ok: true; result: unknown }
  | { type: 'result'; id: number; ok: false; error: ApiError }
  | { type: 'event'; event: keyof Events; payload: unknown };

const entry = new URL(
  import.meta.url.endsWith('.ts') ? './worker-entry.ts' : './worker-entry.js',
  import.meta.url,
);

/**
 * The engine in a worker thread behind the same EngineHost interface as the in-process Engine, so a door's
 * event loop (the HTTP server, Electron's main process) never waits on a CNN batch or a database write.
 */
class EngineWorker implements EngineHost {
  private readonly events = new EventEmitter();
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private exited: Error | null = null;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'event') this.events.emit(message.event, message.payload);
      if (message.type !== 'result') return;
      const waiter = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.ok) waiter?.resolve(message.result);
      else waiter?.reject(fromApiError(message.error));
    });
    worker.on('exit', (code) => {
      this.exited = new Error(`the engine worker stopped (exit code ${code})`);
      for (const waiter of this.pending.values()) waiter.reject(this.exited);
      this.pending.clear();
    });
  }

  static open(options: EngineOptions): Promise<EngineWorker> {
    const start = workerStart(entry, { options });
    const worker = new Worker(start.filename, { workerData: start.workerData });
    return new Promise((resolve, reject) => {
      const onMessage = (message: WorkerMessage) => {
        if (message.type === 'ready') {
          worker.off('message', onMessage);
          resolve(new EngineWorker(worker));
        } else if (message.type === 'open-failed') {
          worker.off('message', onMessage);
          void worker.terminate();
          reject(fromApiError(message.error));
        }
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
    });
  }

  private request<T>(message: Unnumbered<WorkerRequest>): Promise<T> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...message, id });
    });
  }

  invoke<M extends Method>(method: M, input: Input<M>): Promise<Output<M>> {
    return this.request({ type: 'call', method, input });
  }

  on<E extends keyof Events>(event: E, listener: (payload: Events[E]) => void): () => void {
    this.events.on(event, listener);
    return () => this.events.off(event, listener);
  }

  async media(
    imageId: number,
    kind: 'thumb' | 'full',
    size?: number,
  ): Promise<{ bytes: Buffer; type: string }> {
    const { bytes, type } = await this.request<{ bytes: Uint8Array; type: string }>({
      type: 'media',
      imageId,
      kind,
      ...(size === undefined ? {} : { size }),
    });
    return { bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), type };
  }

  whenIdle(): Promise<IndexProgress> {
    return this.request({ type: 'whenIdle' });
  }

  async close(): Promise<void> {
    if (!this.exited) await this.request({ type: 'close' });
    await this.worker.terminate();
  }
}

export function openEngineWorker(options: EngineOptions): Promise<EngineHost> {
  return EngineWorker.open(options);
}
