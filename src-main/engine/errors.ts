/**
 * Every failure a user can cause (a bad file, a bad argument, a bad model file) surfaces as a SagasuError:
 * `code` is stable for programs, `subject` names the file or argument, `message` is for people.
 */
export class SagasuError extends Error {
  constructor(
    readonly code: string,
    readonly subject: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${subject}: ${reason}`, options);
    this.name = new.target.name;
  }
}

/** A failure about one file, under one of the codes `C` its class allows. */
export class FileError<C extends string> extends SagasuError {
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
export function fileErrorClass<C extends string>(code: C) {
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
