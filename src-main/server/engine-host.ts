import type { ApiError, SagasuApi } from '../contract/index.ts';

/**
 * What a door needs from the engine: the contract, media of indexed photos, and close. The engine's
 * EngineHost (in-process or in a worker) has exactly this shape.
 */
export interface DoorEngine extends SagasuApi {
  media(imageId: number, kind: 'thumb' | 'full', size?: number): Promise<{ bytes: Buffer; type: string }>;
  close(): Promise<void>;
}

/**
 * The HTTP status of a refused or failed call. Everything a user can cause with bad input is a 400 (a bad
 * argument, an image that cannot be decoded); a file or photo that is not there a 404; a library held by
 * another process a 409; a broken installation, model or disk is a 500.
 */
export function httpStatus(error: ApiError): number {
  switch (error.code) {
    case 'not-found':
    case 'photo-missing':
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
    case 'write-failed':
    case 'exiftool-missing':
    case 'index-save-failed':
    case 'catalog-invalid':
    case 'native-module':
    case 'caption-bank':
    case 'invalid-vocabulary':
    case 'no-statistics':
      return 500;
    default:
      return 400;
  }
}

/**
 * A door's engine while the real one is still opening (models load for seconds): the server can listen and
 * serve the page at once, and calls made meanwhile wait for the engine, or carry its failure to open.
 */
export function deferredEngine(opening: Promise<DoorEngine>): DoorEngine {
  // Each call reports a failure to open; this keeps it from also being an unhandled rejection.
  opening.catch(() => {});
  return {
    async invoke(method, input) {
      return (await opening).invoke(method, input);
    },
    on(event, listener) {
      let off: (() => void) | null = null;
      let stopped = false;
      opening.then(
        (engine) => {
          if (!stopped) off = engine.on(event, listener);
        },
        () => {},
      );
      return () => {
        stopped = true;
        off?.();
      };
    },
    async media(imageId, kind, size) {
      return (await opening).media(imageId, kind, size);
    },
    async close() {
      const engine = await opening.catch(() => null);
      await engine?.close();
    },
  };
}
