/**
 * Every error code, with the HTTP status a door answers it with: the one table both doors and the CLI read
 * (httpStatus, exitCode). A code missing here does not compile where it is thrown.
 * 400: what the person sent is refused (an argument, a photo that cannot be decoded); 404: a file or photo
 * that is not there; 409: the library's state refuses it for now (held by another process, a model-set
 * swap, a photo not indexed yet); 500: a broken installation, model, data set or disk.
 */
const HTTP_STATUS = {
  // Refused input.
  'invalid-argument': 400,
  'permission-denied': 400,
  'not-a-file': 400,
  'empty-file': 400,
  'unsupported-format': 400,
  corrupt: 400,
  'too-many-pixels': 400,
  'sidecar-refused': 400,
  'no-encoder': 400,
  'nothing-to-rank': 400,
  // What the doors themselves refuse.
  unauthorized: 401,
  forbidden: 403,
  'unknown-method': 404,
  'too-large': 413,
  'unsupported-media-type': 415,
  // Not there.
  'not-found': 404,
  'photo-missing': 404,
  // The library's state, for now.
  'library-locked': 409,
  'model-switched': 409,
  'not-indexed': 409,
  // The installation, a model, the data, the disk.
  internal: 500,
  missing: 500,
  'sha256-mismatch': 500,
  'download-failed': 500,
  'invalid-model': 500,
  'unsupported-op': 500,
  'no-model': 500,
  'no-statistics': 500,
  'stats-mismatch': 500,
  'invalid-vocabulary': 500,
  'invalid-word-vectors': 500,
  'missing-dictionary': 500,
  'lexicon-missing': 500,
  'lexicon-damaged': 500,
  'caption-bank': 500,
  'native-module': 500,
  'native-build': 500,
  'exiftool-missing': 500,
  'unsupported-platform': 500,
  'missing-dataset': 500,
  'dataset-damaged': 500,
  'missing-data': 500,
  'data-damaged': 500,
  'cache-changed': 500,
  'catalog-invalid': 500,
  'index-save-failed': 500,
  'library-read-only': 500,
  'read-failed': 500,
  'write-failed': 500,
  'cannot-write': 500,
} as const satisfies Record<string, 400 | 401 | 403 | 404 | 409 | 413 | 415 | 500>;

export type ErrorCode = keyof typeof HTTP_STATUS;

export const ERROR_CODES = Object.keys(HTTP_STATUS) as ErrorCode[];

export function httpStatus(code: ErrorCode): number {
  return HTTP_STATUS[code];
}

/**
 * The CLI's exit status for a command a SagasuError stopped: 1 whatever the code, as scripts and the tests rely
 * on (a crash keeps Node's own status); the code itself is on the stderr line and in --json output.
 */
export function exitCode(_code: ErrorCode): 1 {
  return 1;
}

/**
 * Every failure a user can cause (a bad file, a bad argument, a bad model file) surfaces as a SagasuError:
 * `code` is stable for programs, `subject` names the file or argument, `message` is for people.
 */
export class SagasuError extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly subject: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${subject}: ${reason}`, options);
    this.name = new.target.name;
  }
}

export type ImageErrorCode =
  | 'not-found'
  | 'permission-denied'
  | 'not-a-file'
  | 'empty-file'
  | 'unsupported-format'
  | 'corrupt'
  | 'too-many-pixels'
  | 'read-failed';

/** A photo that cannot be turned into pixels. Indexing records it and goes on. */
export class ImageError extends SagasuError {
  constructor(
    override readonly code: ImageErrorCode,
    readonly file: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(code, file, reason, options);
  }
}

export type ModelErrorCode =
  | 'missing'
  | 'sha256-mismatch'
  | 'download-failed'
  | 'invalid-model'
  | 'unsupported-op';

/** A model file that is absent, altered or not what the engine can run. */
export class ModelError extends SagasuError {
  constructor(
    override readonly code: ModelErrorCode,
    readonly file: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(code, file, reason, options);
  }
}

/** A command-line or API argument that fails validation. */
export class ArgumentError extends SagasuError {
  constructor(argument: string, reason: string) {
    super('invalid-argument', argument, reason);
  }
}
