import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArgumentError } from '../src-main/engine/errors.ts';
import { Library, LibraryLockedError, LOCK_FILE } from '../src-main/engine/library/index.ts';
import { tempDir } from './helpers/library-fixtures.ts';

const child = fileURLToPath(new URL('./helpers/library-child.ts', import.meta.url));
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/** Starts the child and resolves with it once it printed its first line. */
function startHolder(dir: string): Promise<{ proc: ChildProcess; first: { open?: number } }> {
  const proc = spawn(process.execPath, ['--import', tsx, child, 'hold', dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('\n')) resolve({ proc, first: JSON.parse(out.split('\n')[0] as string) });
    });
    proc.once('exit', (code) => reject(new Error(`holder exited (${code}) before opening: ${out}`)));
  });
}

describe('one Sagasu process per library', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir('lock');
  });
  afterEach(() => tmp.cleanup());

  it('refuses a second open in the same process, and allows it after close', async () => {
    const lib = await Library.open({ dir: tmp.dir });
    await expect(Library.open({ dir: tmp.dir })).rejects.toThrow(LibraryLockedError);
    await expect(Library.open({ dir: tmp.dir })).rejects.toMatchObject({
      code: 'library-locked',
      subject: tmp.dir,
    });
    await lib.close();
    expect(existsSync(join(tmp.dir, LOCK_FILE))).toBe(false);
    await (await Library.open({ dir: tmp.dir })).close();
  });

  it('refuses while another process holds it, naming its pid, and takes over the lock once that one died', async () => {
    const { proc, first } = await startHolder(tmp.dir);
    try {
      expect(first.open).toBe(proc.pid);
      expect(readFileSync(join(tmp.dir, LOCK_FILE), 'utf8').trim()).toBe(String(proc.pid));
      const refused = await Library.open({ dir: tmp.dir }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(refused).toBeInstanceOf(LibraryLockedError);
      expect((refused as Error).message).toContain(`another Sagasu process (pid ${proc.pid})`);
    } finally {
      proc.kill('SIGKILL');
      await new Promise((resolve) => proc.once('exit', resolve));
    }
    // Killed: its lock file is still there, with a pid that no longer runs.
    expect(readFileSync(join(tmp.dir, LOCK_FILE), 'utf8').trim()).toBe(String(proc.pid));
    const lib = await Library.open({ dir: tmp.dir });
    expect(readFileSync(join(tmp.dir, LOCK_FILE), 'utf8').trim()).toBe(String(process.pid));
    await lib.close();
  });

  it('tells the second process why it was refused', async () => {
    const lib = await Library.open({ dir: tmp.dir });
    try {
      const run = await promisify(execFile)(process.execPath, ['--import', tsx, child, 'hold', tmp.dir]).then(
        (r) => r,
        (e: { stdout: string; code: number }) => e,
      );
      const line = JSON.parse(run.stdout.trim());
      expect(line.error).toMatchObject({ code: 'library-locked', subject: tmp.dir });
      expect(line.error.message).toContain(`pid ${process.pid}`);
    } finally {
      await lib.close();
    }
  });

  it('treats an unreadable or empty lock file as stale', async () => {
    writeFileSync(join(tmp.dir, LOCK_FILE), '');
    await (await Library.open({ dir: tmp.dir })).close();
  });
});

describe('library roots', () => {
  it('refuses a missing path, a file, a root twice (by any name), and roots inside or around a root', async () => {
    const tmp = tempDir('roots');
    const lib = await Library.open({ dir: join(tmp.dir, 'lib') });
    try {
      const photos = join(tmp.dir, 'photos');
      mkdirSync(join(photos, 'inner'), { recursive: true });
      writeFileSync(join(tmp.dir, 'file.jpg'), 'x');
      symlinkSync(photos, join(tmp.dir, 'alias'));
      expect(() => lib.roots.add(join(tmp.dir, 'nope'))).toThrow(/does not exist/);
      expect(() => lib.roots.add(join(tmp.dir, 'file.jpg'))).toThrow(/is not a folder/);
      const root = lib.roots.add(photos);
      expect(root).toMatchObject({ path: photos, online: true, images: 0, failed: 0 });
      expect(() => lib.roots.add(photos)).toThrow(ArgumentError);
      expect(() => lib.roots.add(join(tmp.dir, 'alias'))).toThrow(/already a library folder/);
      expect(() => lib.roots.add(join(photos, 'inner'))).toThrow(/inside the library folder/);
      expect(() => lib.roots.add(tmp.dir)).toThrow(/contains the library folder/);
      expect(lib.roots.remove(root.id)).toEqual({ removedImages: 0 });
      expect(lib.roots.list()).toEqual([]);
      expect(() => lib.roots.remove(root.id)).toThrow(/no library folder has id/);
    } finally {
      await lib.close();
      tmp.cleanup();
    }
  });
});
