import type { ApiError } from '../contract/index.ts';

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
