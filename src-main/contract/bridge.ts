import type { Events, Input, Method, Output } from './methods.ts';

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
