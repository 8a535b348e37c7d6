/**
 * The sagasu CLI on libraries and outputs it cannot write: one line naming the path and the reason, exit 1,
 * never a stack trace; and `status` of a library on a read-only disk (a real read-only mount, as root).
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../src-main/engine/paths.ts';
import { skipNote } from './helpers/shared.ts';

const bin = join(projectRoot, 'bin', 'sagasu.js');
const note = skipNote({ cnn: true });

function sagasu(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, [bin, ...args], { cwd: projectRoot }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
}

/** The one line a refused command prints (log lines of the models opening aside), and no stack. */
function refusal(stderr: string): string {
  expect(stderr).not.toMatch(/\n\s+at /);
  const lines = stderr.trim().split('\n');
  expect(lines.filter((l) => l.startsWith('sagasu: '))).toHaveLength(1);
  return lines.at(-1) as string;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sagasu-cli-errors-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe(`sagasu on paths it cannot write${note}`, () => {
  it.skipIf(note !== '')(
    'a file as --library, and an -o in a folder that does not exist: one line each',
    async () => {
      const output = join(dir, 'no', 'such', 'x.csv');
      const [library, exported] = await Promise.all([
        sagasu(['status', '--library', '/etc/passwd']),
        sagasu(['export', '--format', 'csv', '-o', output, '--library', join(dir, 'lib')]),
      ]);
      expect(library.code).toBe(1);
      expect(refusal(library.stderr)).toBe('sagasu: /etc/passwd: is a file, not a folder');
      expect(exported.code).toBe(1);
      expect(refusal(exported.stderr)).toBe(
        `sagasu: ${output}: cannot be written: the folder it goes in does not exist`,
      );
    },
  );
});

const root = process.getuid?.() === 0;
const readOnlyNote =
  note || (root ? '' : ' [skipped: a read-only mount needs root (mount -t tmpfs, then remount ro)]');

describe(`a library on a read-only disk${readOnlyNote}`, () => {
  it.skipIf(readOnlyNote !== '')('status shows it as stored; index is refused in one line', async (ctx) => {
    const mount = join(dir, 'mount');
    const photos = join(dir, 'photos');
    await mkdir(mount);
    await mkdir(photos);
    await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3070b0' } })
      .jpeg()
      .toFile(join(photos, 'a.jpg'));
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', mount]).status !== 0) {
      console.log('skipped: this machine does not allow mounting a tmpfs');
      ctx.skip();
    }
    try {
      const library = join(mount, 'library');
      const indexed = await sagasu(['index', photos, '--library', library]);
      expect(indexed.code, indexed.stderr).toBe(0);
      expect(spawnSync('mount', ['-o', 'remount,ro', mount]).status).toBe(0);
      const status = await sagasu(['status', '--library', library]);
      expect(status.code, status.stderr).toBe(0);
      expect(status.stdout).toContain('1 indexed, 0 pending, 0 could not be read');
      expect(status.stdout).toContain(`${photos}: 1 photos, 0 failed`);
      expect(status.stderr).toContain(`${library}: read-only, shown as stored`);
      const json = JSON.parse((await sagasu(['status', '--json', '--library', library])).stdout);
      expect(json.images).toMatchObject({ total: 1, indexed: 1 });
      const index = await sagasu(['index', '--library', library]);
      expect(index.code).toBe(1);
      expect(refusal(index.stderr)).toMatch(
        new RegExp(`^sagasu: ${library}: the library folder cannot be written \\(a read-only disk`),
      );
    } finally {
      spawnSync('umount', [mount]);
    }
  });
});
