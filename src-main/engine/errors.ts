/**
 * Every error code, with the HTTP status a door answers it with: the one table both doors and the CLI read
 * (httpStatus, exitCode). A code missing here does not compile where it is thrown.
 * 400: what the person sent is refused (an argument, a photo that cannot be decoded); 404: a file or photo
 * that is not there; 409: the library's state refuses it for now (held by another process, a model-set
 * swap, a photo not indexed yet); 500: a broken installation, model, data set or disk.
 */
const STATUSES = [
  [400, ['invalid-argument', 'permission-denied', 'not-a-file', 'empty-file', 'unsupported-format']],
  [400, ['corrupt', 'too-many-pixels', 'sidecar-refused', 'no-encoder', 'nothing-to-rank']],
  [401, ['unauthorized']],
  [403, ['forbidden']],
  [404, ['not-found', 'photo-missing', 'unknown-method']],
  [409, ['library-locked', 'model-switched', 'not-indexed']],
  [413, ['too-large']],
  [415, ['unsupported-media-type']],
  [500, ['internal', 'missing', 'sha256-mismatch', 'download-failed', 'invalid-model', 'unsupported-op']],
  [500, ['no-model', 'no-statistics', 'stats-mismatch', 'invalid-vocabulary', 'invalid-word-vectors']],
  [500, ['missing-dictionary', 'lexicon-missing', 'lexicon-damaged', 'caption-bank', 'native-module']],
  [500, ['native-build', 'exiftool-missing', 'unsupported-platform', 'missing-dataset', 'dataset-damaged']],
  [500, ['missing-data', 'data-damaged', 'cache-changed', 'catalog-invalid', 'index-save-failed']],
  [500, ['library-read-only', 'read-failed', 'write-failed', 'cannot-write']],
] as const;

export type ErrorCode = (typeof STATUSES)[number][1][number];

const STATUS = new Map<string, number>(
  STATUSES.flatMap(([status, codes]) => codes.map((code) => [code, status])),
);

export const ERROR_CODES = [...STATUS.keys()] as ErrorCode[];

export function httpStatus(code: ErrorCode): number {
  return STATUS.get(code) as number;
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

/** A failure about one file, under one of the codes `C` its class allows. */
export class FileError<C extends ErrorCode> extends SagasuError {
  constructor(
    override readonly code: C,
    readonly file: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(code, file, reason, options);
  }
}

/** The base of a failure class about one file that always has this code (CatalogError, WriteError, ...). */
export function fileErrorClass<C extends ErrorCode>(code: C) {
  return class extends FileError<C> {
    constructor(file: string, reason: string, options?: { cause?: unknown }) {
      super(code, file, reason, options);
    }
  };
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
export class ImageError extends FileError<ImageErrorCode> {}

type ModelErrorCode = 'missing' | 'sha256-mismatch' | 'download-failed' | 'invalid-model' | 'unsupported-op';

/** A model file that is absent, altered or not what the engine can run. */
export class ModelError extends FileError<ModelErrorCode> {}

/** A command-line or API argument that fails validation. */
export class ArgumentError extends SagasuError {
  constructor(argument: string, reason: string) {
    super('invalid-argument', argument, reason);
  }
}
