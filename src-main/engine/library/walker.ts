import type { Dirent } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { photoType } from '../../contract/index.ts';

export interface WalkedFile {
  path: string;
  bytes: number;
  mtimeMs: number;
}

export interface WalkResult {
  files: WalkedFile[];
  /** Folders that could not be listed (permissions, vanished mid-walk): their photos are left as they were. */
  unreadable: string[];
  /** What the walk could not take, and why, for the person to see: unlistable folders, names not in UTF-8. */
  failures: Array<{ path: string; reason: string }>;
  /** The root folder's st_dev: another value than last time means another disk is mounted there. */
  device: string;
}

/** Folders that hold system or NAS metadata, never a person's photos (compared lower-case). */
const SYSTEM_FOLDERS = new Set([
  '$recycle.bin',
  'system volume information',
  'lost+found',
  '@eadir',
  '#recycle',
  '#snapshot',
  'node_modules',
]);

export function skippedName(name: string): boolean {
  return name.startsWith('.') || name.startsWith('~$') || SYSTEM_FOLDERS.has(name.toLowerCase());
}

/**
 * Every photo file (by extension; the content is checked when it is decoded) under `root`. Hidden and system
 * folders are skipped. A symlinked folder is followed only when it leads outside the root (inside, its photos
 * are listed under their real path already), and a folder reached twice (a loop, two links to one place) is
 * listed once, by its device and inode. So each photo has one path, whatever order the disk lists names in.
 */
export async function walk(root: string): Promise<WalkResult> {
  const files: WalkedFile[] = [];
  const unreadable: string[] = [];
  const failures: Array<{ path: string; reason: string }> = [];
  const visited = new Set<string>();
  const rootStat = await stat(root);
  const realRoot = await realpath(root);
  visited.add(`${rootStat.dev}:${rootStat.ino}`);
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop() as string;
    let entries: Dirent<Buffer>[];
    try {
      // As bytes: a name that is not UTF-8 would otherwise come back with U+FFFD in it, a path that does not exist.
      entries = await readdir(dir, { withFileTypes: true, encoding: 'buffer' });
    } catch (error) {
      unreadable.push(dir);
      failures.push({
        path: dir,
        reason: `the folder cannot be listed (${(error as NodeJS.ErrnoException).code ?? 'error'}): photos in it are not indexed, and those indexed before are kept`,
      });
      continue;
    }
    await Promise.all(
      entries.map(async (entry) => {
        const lossy = entry.name.toString('utf8');
        if (skippedName(lossy)) return;
        const name = utf8(entry.name);
        if (name === null) {
          if (!entry.isFile() || photoType(lossy) !== null)
            failures.push({
              path: join(dir, lossy),
              reason: 'its name is not valid UTF-8, so it cannot be opened by name; rename it to index it',
            });
          return;
        }
        const path = join(dir, name);
        const isPhotoName = photoType(name) !== null;
        if (entry.isFile() && !isPhotoName) return;
        if (!entry.isFile() && !entry.isDirectory() && !entry.isSymbolicLink()) return;
        let s: Awaited<ReturnType<typeof stat>>;
        try {
          s = await stat(path);
        } catch {
          return; // vanished, or a dangling link
        }
        if (s.isDirectory()) {
          if (entry.isSymbolicLink()) {
            const target = await realpath(path).catch(() => realRoot);
            const rel = relative(realRoot, target);
            if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))) return;
          }
          const key = `${s.dev}:${s.ino}`;
          if (visited.has(key)) return;
          visited.add(key);
          stack.push(path);
        } else if (s.isFile() && isPhotoName) {
          files.push({ path, bytes: s.size, mtimeMs: Math.floor(s.mtimeMs) });
        }
      }),
    );
  }
  return { files, unreadable, failures, device: String(rootStat.dev) };
}

// ignoreBOM keeps a leading U+FEFF: it is part of the name.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function utf8(bytes: Buffer): string | null {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}
