import type { ApiError, SagasuApi } from '../engine/api/contract.ts';

/**
 * What a door needs from the engine: the contract, media of indexed photos, and close. The engine's
 * EngineHost (in-process or in a worker) has exactly this shape.
 */
export interface DoorEngine extends SagasuApi {
  media(imageId: number, kind: 'thumb' | 'full', size?: number): Promise<{ bytes: Buffer; type: string }>;
  close(): Promise<void>;
}

/**
 * The HTTP status of a refused or failed call. Everything a user can cause with bad input is a 400; a file
 * or photo that is not there a 404; a library held by another process a 409; the rest is ours (500).
 */
export function httpStatus(error: ApiError): number {
  switch (error.code) {
    case 'not-found':
    case 'unknown-method':
      return 404;
    case 'unauthorized':
      return 401;
    case 'forbidden':
      return 403;
    case 'library-locked':
      return 409;
    case 'too-large':
      return 413;
    case 'unsupported-media-type':
      return 415;
    case 'internal':
    case 'missing':
    case 'sha256-mismatch':
    case 'download-failed':
    case 'invalid-model':
    case 'unsupported-op':
    case 'read-failed':
      return 500;
    default:
      return 400;
  }
}
