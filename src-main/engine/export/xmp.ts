import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, lstat, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { ArgumentError, FileError } from '../errors.ts';

/**
 * XMP sidecars through ExifTool (never hand-written XMP): accepted tags go into dc:subject (and their
 * hierarchy, where they have one, into lr:hierarchicalSubject) and the accepted caption into dc:description
 * of `photo.jpg.xmp` (or `photo.xmp`), merged into what the sidecar already holds. The photo itself is
 * never opened for writing: ExifTool is only ever given the sidecar's path.
 */

export type XmpNaming = 'photo.jpg.xmp' | 'photo.xmp';

export type XmpErrorCode =
  | 'exiftool-missing'
  | 'photo-missing'
  | 'sidecar-refused'
  | 'write-failed'
  | 'read-failed';

export class XmpError extends FileError<XmpErrorCode> {}

export interface XmpContent {
  /** Keywords for dc:subject, added to the ones the sidecar already has (no duplicates). */
  tags: readonly string[];
  /** dc:description (x-default); null leaves an existing description as it is. */
  caption: string | null;
  /** Keywords to take out of dc:subject (e.g. tags the editor rejected after an earlier write). */
  removeTags?: readonly string[];
  /**
   * Lightroom's lr:hierarchicalSubject path of a tag ("koala" -> "animal|mammal|marsupial|koala"): written
   * beside the tags that have one, taken out with the removeTags that have one.
   */
  hierarchy?: Readonly<Record<string, string>>;
}

export interface XmpWriteOptions {
  /** `photo.jpg.xmp` (default: keeps photo.jpg and photo.png apart) or `photo.xmp` (Lightroom's naming). */
  naming?: XmpNaming;
  /** The exiftool executable (default: SAGASU_EXIFTOOL, else `exiftool` on the PATH). */
  exiftool?: string;
}

export interface XmpSidecar {
  /** dc:subject, in file order. */
  tags: string[];
  /** dc:description (x-default), or null. */
  caption: string | null;
  /** lr:hierarchicalSubject, in file order. */
  hierarchicalTags: string[];
  /** Every XMP field of the file, keyed by ExifTool's family-1 group and tag name (e.g. "XMP-xmp:Rating"). */
  fields: Record<string, unknown>;
}

/** Where a photo's sidecar lives under the chosen naming. */
export function sidecarPath(photoPath: string, naming: XmpNaming = 'photo.jpg.xmp'): string {
  const photo = resolve(photoPath);
  if (naming === 'photo.jpg.xmp') return `${photo}.xmp`;
  return join(dirname(photo), `${basename(photo, extname(photo))}.xmp`);
}

const INSTALL =
  'install ExifTool (Debian/Ubuntu: `sudo apt-get install libimage-exiftool-perl`; macOS: `brew install exiftool`; Windows: https://exiftool.org), or set SAGASU_EXIFTOOL to its path';

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs exiftool with its arguments on stdin (`-@ -`), one per line: no shell, no command-line length limit,
 * and no dependence on how the platform encodes a Unicode command line.
 */
function exiftool(executable: string, args: readonly string[], subject: string): Promise<RunResult> {
  for (const a of args)
    if (/[\r\n]/.test(a))
      throw new ArgumentError('xmp', `an argument holds a line break: ${JSON.stringify(a)}`);
  return new Promise((resolvePromise, reject) => {
    const child = spawn(executable, ['-@', '-'], { stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (cause: NodeJS.ErrnoException) => {
      reject(spawnError(cause, executable, subject));
    });
    child.on('close', (code) =>
      resolvePromise({
        code: code ?? 1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
    child.stdin.on('error', () => {}); // a child that died early: 'close' reports it
    child.stdin.end(`${args.join('\n')}\n`);
  });
}

/** Why ExifTool could not be started: not installed (with how to install it), or the system's reason. */
function spawnError(cause: NodeJS.ErrnoException, executable: string, subject: string): XmpError {
  return cause.code === 'ENOENT' || cause.code === 'EACCES'
    ? new XmpError('exiftool-missing', executable, `ExifTool is not installed or not runnable: ${INSTALL}`, {
        cause,
      })
    : new XmpError('write-failed', subject, `could not run ExifTool: ${cause.message}`, { cause });
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function firstProblem(stderr: string, stdout: string): string {
  const lines = `${stderr}\n${stdout}`
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^(Error|Warning)/i.test(l));
  return lines[0] ?? (oneLine(stderr) || 'ExifTool reported a failure');
}

/** Checks the photo and the content, and builds the ExifTool arguments that write its sidecar. */
async function writeCommand(
  photoPath: string,
  content: XmpContent,
  naming: XmpNaming | undefined,
): Promise<{ sidecar: string; args: string[] }> {
  const photo = resolve(photoPath);
  const info = await stat(photo).catch((cause: unknown) => {
    throw new XmpError(
      'photo-missing',
      photo,
      'the photo is not there (moved, deleted, or its disk is offline)',
      {
        cause,
      },
    );
  });
  if (!info.isFile()) throw new XmpError('photo-missing', photo, 'is not a file');
  const tags = [...new Set(content.tags.map(oneLine).filter(Boolean))];
  const remove = [...new Set((content.removeTags ?? []).map(oneLine).filter(Boolean))].filter(
    (t) => !tags.includes(t),
  );
  const caption = content.caption === null ? null : oneLine(content.caption);
  if (tags.length === 0 && remove.length === 0 && !caption)
    throw new ArgumentError('xmp', `nothing to write for ${photo}: no accepted tag and no caption`);
  const sidecar = sidecarPath(photo, naming);
  const args = ['-overwrite_original', '-charset', 'utf8'];
  // "-=" then "+=": ExifTool's idiom for adding a list item only when it is not there yet.
  for (const t of tags) args.push(`-XMP-dc:Subject-=${t}`, `-XMP-dc:Subject+=${t}`);
  for (const t of remove) args.push(`-XMP-dc:Subject-=${t}`);
  const path = (t: string) => oneLine(content.hierarchy?.[t] ?? '');
  for (const h of new Set(tags.map(path).filter(Boolean)))
    args.push(`-XMP-lr:HierarchicalSubject-=${h}`, `-XMP-lr:HierarchicalSubject+=${h}`);
  for (const h of new Set(remove.map(path).filter(Boolean))) args.push(`-XMP-lr:HierarchicalSubject-=${h}`);
  if (caption) args.push(`-XMP-dc:Description=${caption}`);
  args.push(sidecar);
  return { sidecar, args };
}

/**
 * Right before ExifTool runs: the sidecar path must be a regular, writable file or nothing at all. ExifTool
 * given a folder rewrites every image inside it, and given a link or a read-only file it replaces it (it
 * writes a new file and renames it over the old one), so anything else is refused and left alone.
 */
async function checkSidecar(sidecar: string): Promise<void> {
  let info: Awaited<ReturnType<typeof lstat>>;
  try {
    info = await lstat(sidecar);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new XmpError('sidecar-refused', sidecar, `cannot be checked: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const what = info.isDirectory()
    ? 'a folder'
    : info.isSymbolicLink()
      ? 'a symbolic link'
      : info.isFile()
        ? null
        : 'not a regular file (a device, pipe or socket)';
  if (what)
    throw new XmpError(
      'sidecar-refused',
      sidecar,
      `is ${what}, not a sidecar file; Sagasu writes only a plain .xmp file and left this one alone (move it away to let Sagasu write the sidecar)`,
    );
  // Root may write anything, so the mode bits are what says the user meant it read-only.
  const writable =
    (info.mode & 0o222) !== 0 &&
    (await access(sidecar, constants.W_OK).then(
      () => true,
      () => false,
    ));
  if (!writable)
    throw new XmpError(
      'sidecar-refused',
      sidecar,
      'is read-only, so Sagasu left it as it is; make it writable (chmod u+w) to add the accepted tags and caption',
    );
}

function writeFailed(stdout: string, stderr: string): boolean {
  return /\bfiles? weren't (updated|created)/.test(stdout) || /^Error/m.test(stderr);
}

function executableOf(options: { exiftool?: string }): string {
  return options.exiftool ?? process.env.SAGASU_EXIFTOOL ?? 'exiftool';
}

/**
 * Writes (creating or merging) the photo's XMP sidecar and returns its path. The sidecar's other fields
 * survive; ExifTool writes a new file and renames it over the old one, so a failure (a read-only folder, a
 * damaged sidecar) leaves the old sidecar exactly as it was and surfaces as an XmpError naming the file.
 * One ExifTool process per call; for many photos, XmpWriter keeps one running.
 */
export async function writeXmpSidecar(
  photoPath: string,
  content: XmpContent,
  options: XmpWriteOptions = {},
): Promise<string> {
  const { sidecar, args } = await writeCommand(photoPath, content, options.naming);
  await checkSidecar(sidecar);
  const result = await exiftool(executableOf(options), args, sidecar);
  if (result.code !== 0 || writeFailed(result.stdout, result.stderr))
    throw new XmpError('write-failed', sidecar, firstProblem(result.stderr, result.stdout));
  return sidecar;
}

/**
 * Many sidecars through one long-running ExifTool (`-stay_open`): Perl and ExifTool's modules load once,
 * instead of once per photo. Calls run one after another; a photo that fails rejects its own call and
 * the writer goes on with the next.
 */
export class XmpWriter {
  private child: ChildProcessWithoutNullStreams | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private stdout = '';
  private stderr = '';
  private waiting: (() => void) | undefined;
  private failure: XmpError | undefined;
  private counter = 0;

  constructor(private readonly options: XmpWriteOptions = {}) {}

  private start(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const executable = executableOf(this.options);
    this.failure = undefined;
    const child = spawn(executable, ['-stay_open', 'True', '-@', '-'], { windowsHide: true });
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (t: string) => {
      this.stdout += t;
      this.waiting?.();
    });
    child.stderr.on('data', (t: string) => {
      this.stderr += t;
      this.waiting?.();
    });
    child.on('error', (cause: NodeJS.ErrnoException) => {
      this.failure = spawnError(cause, executable, executable);
      this.waiting?.();
    });
    child.on('close', () => {
      this.failure ??= new XmpError('write-failed', executable, 'ExifTool exited unexpectedly');
      this.child = undefined;
      this.waiting?.();
    });
    child.stdin.on('error', () => {}); // reported through 'error' / 'close'
    this.child = child;
    return child;
  }

  /** Sends one command and resolves with its stdout and stderr, each up to its {readyN} marker. */
  private command(
    args: readonly string[],
    before: () => Promise<void> = async () => {},
  ): Promise<{ stdout: string; stderr: string }> {
    for (const a of args)
      if (/[\r\n]/.test(a))
        throw new ArgumentError('xmp', `an argument holds a line break: ${JSON.stringify(a)}`);
    const run = async () => {
      // In the queue, so nothing this writer runs can change the path between the check and the write.
      await before();
      const child = this.start();
      const n = ++this.counter;
      const outMark = `{ready${n}}`;
      const errMark = `{done${n}}`;
      child.stdin.write(`${[...args, '-echo4', errMark, `-execute${n}`].join('\n')}\n`);
      for (;;) {
        const o = this.stdout.indexOf(outMark);
        const e = this.stderr.indexOf(errMark);
        if (o >= 0 && e >= 0) {
          const result = { stdout: this.stdout.slice(0, o), stderr: this.stderr.slice(0, e) };
          this.stdout = this.stdout.slice(o + outMark.length).replace(/^\r?\n/, '');
          this.stderr = this.stderr.slice(e + errMark.length).replace(/^\r?\n/, '');
          return result;
        }
        if (this.failure) {
          const failure = this.failure;
          this.failure = undefined;
          this.stdout = '';
          this.stderr = '';
          throw failure;
        }
        await new Promise<void>((wake) => {
          this.waiting = wake;
        });
        this.waiting = undefined;
      }
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => {});
    return result;
  }

  /** writeXmpSidecar through this writer's ExifTool. */
  async write(photoPath: string, content: XmpContent, naming = this.options.naming): Promise<string> {
    const { sidecar, args } = await writeCommand(photoPath, content, naming);
    const result = await this.command(args, () => checkSidecar(sidecar));
    if (writeFailed(result.stdout, result.stderr))
      throw new XmpError('write-failed', sidecar, firstProblem(result.stderr, result.stdout));
    return sidecar;
  }

  /** Stops ExifTool (after the calls already made). */
  async close(): Promise<void> {
    await this.queue;
    const child = this.child;
    if (!child) return;
    await new Promise<void>((done) => {
      child.once('close', () => done());
      child.stdin.end('-stay_open\nFalse\n');
    });
  }
}

/** A sidecar's dc:subject, dc:description and every other XMP field, as ExifTool reads them. */
export async function readXmpSidecar(path: string, options: { exiftool?: string } = {}): Promise<XmpSidecar> {
  const file = resolve(path);
  const executable = options.exiftool ?? process.env.SAGASU_EXIFTOOL ?? 'exiftool';
  const result = await exiftool(
    executable,
    ['-j', '-G1', '-struct', '-charset', 'utf8', '-XMP:all', file],
    file,
  );
  let rows: Array<Record<string, unknown>>;
  try {
    rows = JSON.parse(result.stdout) as Array<Record<string, unknown>>;
  } catch (cause) {
    throw new XmpError('read-failed', file, firstProblem(result.stderr, result.stdout), { cause });
  }
  const row = rows[0];
  if (!row || result.code !== 0 || typeof row.Error === 'string')
    throw new XmpError('read-failed', file, String(row?.Error ?? firstProblem(result.stderr, result.stdout)));
  const { SourceFile: _source, ...fields } = row;
  const list = (value: unknown) =>
    value === undefined ? [] : (Array.isArray(value) ? value : [value]).map(String);
  const description = fields['XMP-dc:Description'];
  return {
    tags: list(fields['XMP-dc:Subject']),
    caption: description === undefined ? null : String(description),
    hierarchicalTags: list(fields['XMP-lr:HierarchicalSubject']),
    fields,
  };
}
