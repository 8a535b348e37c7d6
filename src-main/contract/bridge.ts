import type { SagasuApi } from './methods.ts';

/**
 * `window.sagasu` in the desktop app: the contract, plus what only a window has. A refused call rejects with an
 * ApiError object ({ code, subject, message }), the same shape the HTTP door answers with.
 */
export interface SagasuBridge extends SagasuApi {
  /** The folder the person picked in the system dialog, or null when cancelled. */
  pickFolder(): Promise<string | null>;
  /** The path on disk of a file dropped on the window (for "find similar"). */
  pathForFile(file: File): string;
}
