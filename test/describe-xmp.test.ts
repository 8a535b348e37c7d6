/**
 * XMP sidecars through Debian's exiftool, read back with exiftool itself, and the CSV / JSON export.
 * The photo must never change (bytes and mtime); a sidecar's other fields must survive a merge; a folder
 * that cannot be written and a damaged sidecar are typed errors that lose nothing.
 */
import { execFile, spawnSync } from 'node:child_process';
import {
  chmod,
  copyFile,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'csv-parse/sync';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArgumentError } from '../src-main/engine/errors.ts';
import {
  exportRows,
  readXmpSidecar,
  sidecarPath,
  writeXmpSidecar,
  XmpError,
  XmpWriter,
} from '../src-main/engine/export/index.ts';
import { referenceDir } from './helpers/shared.ts';

const run = promisify(execFile);
const hasExiftool = spawnSync('exiftool', ['-ver']).status === 0;
const note = hasExiftool
  ? ''
  : ' [skipped: exiftool is not installed (apt-get install libimage-exiftool-perl)]';

/** What exiftool itself reads from a sidecar's Dublin Core (and any other group asked for). */
async function exifRead(file: string, ...groups: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run('exiftool', ['-j', ...(groups.length ? groups : ['-XMP-dc:all']), file]);
  return (JSON.parse(stdout) as Array<Record<string, unknown>>)[0] as Record<string, unknown>;
}

let dir: string;
let photo: string;
let photoBytes: Buffer;
const OLD = new Date('2020-05-06T07:08:09Z');

async function freshPhoto(name: string): Promise<string> {
  const file = join(dir, name);
  // A real JPEG when the reference photos are here; any bytes do, since the photo is never read.
  const source = referenceDir ? join(referenceDir, 'photos', 'coral_owl.jpg') : undefined;
  if (source) await copyFile(source, file);
  else await writeFile(file, Buffer.from([0xff, 0xd8, 0xff, 0xd9]));
  await utimes(file, OLD, OLD);
  return file;
}

async function unchanged(file: string, bytes: Buffer): Promise<void> {
  expect((await readFile(file)).equals(bytes)).toBe(true);
  expect((await stat(file)).mtime.getTime()).toBe(OLD.getTime());
}

describe.skipIf(!hasExiftool)(`XMP sidecars${note}`, () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sagasu-xmp-'));
    photo = await freshPhoto('owl.jpg');
    photoBytes = await readFile(photo);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates photo.jpg.xmp with dc:subject and dc:description, Unicode included; the photo is untouched', async () => {
    const written = await writeXmpSidecar(photo, {
      tags: ['owl', 'bird', '鳥', 'フクロウ'],
      caption: 'An owl sits on a branch 枝の上のフクロウ',
    });
    expect(written).toBe(`${photo}.xmp`);
    const read = await exifRead(written);
    expect(read.Subject).toEqual(['owl', 'bird', '鳥', 'フクロウ']);
    expect(read.Description).toBe('An owl sits on a branch 枝の上のフクロウ');
    await unchanged(photo, photoBytes);
    const mine = await readXmpSidecar(written);
    expect(mine.tags).toEqual(['owl', 'bird', '鳥', 'フクロウ']);
    expect(mine.caption).toBe('An owl sits on a branch 枝の上のフクロウ');
  });

  it("names the sidecar photo.xmp when asked (Lightroom's naming)", async () => {
    const other = await freshPhoto('parrot.jpg');
    const written = await writeXmpSidecar(
      other,
      { tags: ['parrot'], caption: null },
      { naming: 'photo.xmp' },
    );
    expect(written).toBe(join(dir, 'parrot.xmp'));
    expect(sidecarPath(other, 'photo.xmp')).toBe(written);
    expect((await exifRead(written)).Subject).toBe('parrot');
  });

  it('merges into an existing sidecar: other fields survive, keywords are added once, rejected ones removed', async () => {
    const other = await freshPhoto('merge.jpg');
    const bytes = await readFile(other);
    const sidecar = sidecarPath(other);
    // Another application's sidecar: a rating, a creator, a title and a keyword of its own.
    await run('exiftool', [
      '-XMP-xmp:Rating=4',
      '-XMP-dc:Creator=Ansel Adams',
      '-XMP-dc:Title=Evening',
      '-XMP-dc:Subject=holiday',
      '-XMP-dc:Description=Old caption',
      sidecar,
    ]);
    await writeXmpSidecar(other, { tags: ['dog', 'beach'], caption: 'A dog runs on the beach.' });
    await writeXmpSidecar(other, { tags: ['dog', 'sand'], caption: null, removeTags: ['beach'] });
    const all = await exifRead(sidecar, '-XMP:all');
    expect(all.Rating).toBe(4);
    expect(all.Creator).toBe('Ansel Adams');
    expect(all.Title).toBe('Evening');
    expect(all.Subject).toEqual(['holiday', 'dog', 'sand']);
    expect(all.Description).toBe('A dog runs on the beach.');
    const mine = await readXmpSidecar(sidecar);
    expect(mine.fields['XMP-xmp:Rating']).toBe(4);
    await unchanged(other, bytes);
  });

  it('a folder that cannot be written: a typed error naming the sidecar, and nothing is lost', async (ctx) => {
    const folder = join(dir, 'locked');
    await mkdir(folder);
    const locked = join(folder, 'photo.jpg');
    await copyFile(photo, locked);
    await utimes(locked, OLD, OLD);
    const sidecar = sidecarPath(locked);
    await run('exiftool', ['-XMP-xmp:Rating=2', '-XMP-dc:Subject=kept', sidecar]);
    const before = await readFile(sidecar);
    // Root ignores mode bits; the immutable attribute stops it too, where the file system has one.
    const root = process.getuid?.() === 0;
    const lock = root ? spawnSync('chattr', ['+i', folder]) : spawnSync('chmod', ['555', folder]);
    if (lock.status !== 0) ctx.skip();
    try {
      const error = await writeXmpSidecar(locked, { tags: ['new'], caption: 'New' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(XmpError);
      expect((error as XmpError).code).toBe('write-failed');
      expect((error as XmpError).subject).toBe(sidecar);
    } finally {
      spawnSync(root ? 'chattr' : 'chmod', root ? ['-i', folder] : ['755', folder]);
    }
    expect((await readFile(sidecar)).equals(before)).toBe(true);
    await unchanged(locked, photoBytes);
  });

  it('a damaged sidecar is refused, not overwritten', async () => {
    const other = await freshPhoto('damaged.jpg');
    const sidecar = sidecarPath(other);
    await writeFile(sidecar, 'this is not XMP\n');
    await expect(writeXmpSidecar(other, { tags: ['x'], caption: null })).rejects.toThrow(/Not a valid XMP/);
    expect(await readFile(sidecar, 'utf8')).toBe('this is not XMP\n');
  });

  it('XmpWriter: many sidecars through one ExifTool; a failing photo fails alone', async () => {
    const folder = join(dir, 'batch');
    await mkdir(folder);
    const photos: string[] = [];
    for (let k = 0; k < 6; k++) {
      const p = join(folder, `p${k}.jpg`);
      await copyFile(photo, p);
      await utimes(p, OLD, OLD);
      photos.push(p);
    }
    await writeFile(sidecarPath(photos[2] as string), 'damaged\n');
    const writer = new XmpWriter();
    let started = performance.now();
    const results = await Promise.allSettled(
      photos.map((p, k) => writer.write(p, { tags: ['batch', `n${k}`, '写真'], caption: `Photo ${k}` })),
    );
    const perPhoto = (performance.now() - started) / photos.length;
    // Once closed, a later write starts a fresh ExifTool.
    await writer.close();
    await writer.write(photos[0] as string, { tags: ['again'], caption: null });
    await writer.close();
    started = performance.now();
    await writeXmpSidecar(photos[1] as string, { tags: ['one-shot'], caption: null });
    console.log(
      `XMP: ${perPhoto.toFixed(0)} ms per photo through XmpWriter, ${(performance.now() - started).toFixed(0)} ms for one writeXmpSidecar`,
    );
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'rejected',
      'fulfilled',
      'fulfilled',
      'fulfilled',
    ]);
    expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(XmpError);
    expect(await readFile(sidecarPath(photos[2] as string), 'utf8')).toBe('damaged\n');
    for (const [k, p] of photos.entries()) {
      if (k === 2) continue;
      const read = await exifRead(sidecarPath(p));
      const extra = k === 0 ? ['again'] : k === 1 ? ['one-shot'] : [];
      expect(read.Subject).toEqual(['batch', `n${k}`, '写真', ...extra]);
      expect(read.Description).toBe(`Photo ${k}`);
      await unchanged(p, photoBytes);
    }
  });

  it('a sidecar path that is a folder, a link or read-only is refused and nothing in or behind it changes', async () => {
    const folder = join(dir, 'odd-sidecars');
    await mkdir(folder);
    // A real JPEG, which ExifTool would happily rewrite if it were handed the folder that holds it.
    const jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } })
      .jpeg()
      .toBuffer();
    const asFolder = await freshPhoto('odd-sidecars/folder.jpg');
    const inside = join(sidecarPath(asFolder), 'inside.jpg');
    await mkdir(sidecarPath(asFolder));
    await writeFile(inside, jpeg);
    const asLink = await freshPhoto('odd-sidecars/link.jpg');
    const target = join(folder, 'target.xmp');
    await run('exiftool', ['-XMP-dc:Subject=theirs', target]);
    const targetBytes = await readFile(target);
    await symlink(target, sidecarPath(asLink));
    const readOnly = await freshPhoto('odd-sidecars/readonly.jpg');
    await run('exiftool', ['-XMP-dc:Subject=frozen', sidecarPath(readOnly)]);
    await chmod(sidecarPath(readOnly), 0o444);
    const frozenBytes = await readFile(sidecarPath(readOnly));

    const writer = new XmpWriter();
    for (const [file, reason] of [
      [asFolder, /is a folder, not a sidecar file/],
      [asLink, /is a symbolic link/],
      [readOnly, /is read-only.*chmod u\+w/],
    ] as const) {
      for (const write of [
        () => writeXmpSidecar(file, { tags: ['new'], caption: 'New' }),
        () => writer.write(file, { tags: ['new'], caption: 'New' }),
      ]) {
        const error = await write().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(XmpError);
        expect((error as XmpError).code).toBe('sidecar-refused');
        expect((error as XmpError).subject).toBe(sidecarPath(file));
        expect((error as XmpError).reason).toMatch(reason);
      }
    }
    // The writer goes on with the next photo after refusing these.
    const fine = await freshPhoto('odd-sidecars/fine.jpg');
    expect(await writer.write(fine, { tags: ['ok'], caption: null })).toBe(sidecarPath(fine));
    await writer.close();
    expect((await readFile(inside)).equals(jpeg)).toBe(true);
    expect((await readFile(target)).equals(targetBytes)).toBe(true);
    expect((await lstat(sidecarPath(asLink))).isSymbolicLink()).toBe(true);
    expect((await readFile(sidecarPath(readOnly))).equals(frozenBytes)).toBe(true);
    expect((await stat(sidecarPath(readOnly))).mode & 0o777).toBe(0o444);
  });

  it('XmpWriter says how to install a missing exiftool', async () => {
    const writer = new XmpWriter({ exiftool: join(dir, 'no-exiftool') });
    await expect(writer.write(photo, { tags: ['a'], caption: null })).rejects.toMatchObject({
      code: 'exiftool-missing',
    });
    await writer.close();
  });

  it('refuses a missing photo, an empty write, and says how to install a missing exiftool', async () => {
    await expect(
      writeXmpSidecar(join(dir, 'gone.jpg'), { tags: ['a'], caption: null }),
    ).rejects.toMatchObject({
      code: 'photo-missing',
    });
    await expect(writeXmpSidecar(photo, { tags: [], caption: null })).rejects.toThrow(ArgumentError);
    await expect(readXmpSidecar(join(dir, 'none.xmp'))).rejects.toMatchObject({ code: 'read-failed' });
    const error = await writeXmpSidecar(
      photo,
      { tags: ['a'], caption: null },
      { exiftool: join(dir, 'no-exiftool') },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(XmpError);
    expect((error as XmpError).code).toBe('exiftool-missing');
    expect((error as XmpError).message).toMatch(/libimage-exiftool-perl/);
    await unchanged(photo, photoBytes);
  });
});

describe('export', () => {
  const rows = [
    {
      path: '/photos/a "quoted", name.jpg',
      captions: [
        {
          text: 'A dog runs on the beach.',
          score: 0.81,
          source: 'auto' as const,
          status: 'accepted' as const,
        },
        { text: 'Two dogs, one ball.', score: 0.7, source: 'auto' as const, status: 'proposed' as const },
        { text: 'A cat.', score: 0.2, source: 'auto' as const, status: 'rejected' as const },
      ],
      tags: [
        { text: 'dog', confidence: 0.95, source: 'auto' as const, status: 'accepted' as const },
        { text: '犬', confidence: null, source: 'user' as const, status: 'accepted' as const },
        { text: 'beach', confidence: 0.6, source: 'auto' as const, status: 'proposed' as const },
        { text: 'cat', confidence: 0.1, source: 'auto' as const, status: 'rejected' as const },
      ],
    },
    { path: '/photos/b.jpg', captions: [], tags: [] },
  ];

  it('CSV parses back to the same cells (quotes, commas, Unicode), rejected items left out', () => {
    const text = exportRows(rows, 'csv');
    const records = parse(text, { columns: true }) as Array<Record<string, string>>;
    expect(records).toHaveLength(2);
    expect(records[0]).toEqual({
      path: '/photos/a "quoted", name.jpg',
      caption: 'A dog runs on the beach.',
      other_captions: 'Two dogs, one ball.',
      tags: 'dog; 犬',
      proposed_tags: 'beach',
    });
    expect(records[1]?.path).toBe('/photos/b.jpg');
  });

  it('JSON keeps scores, sources and statuses of what was not rejected', () => {
    const back = JSON.parse(exportRows(rows, 'json')) as Array<{
      path: string;
      captions: Array<{ text: string; score: number }>;
      tags: Array<{ text: string; confidence: number | null; source: string }>;
    }>;
    expect(back[0]?.captions.map((c) => c.text)).toEqual(['A dog runs on the beach.', 'Two dogs, one ball.']);
    expect(back[0]?.tags.find((t) => t.text === '犬')).toEqual({
      text: '犬',
      confidence: null,
      source: 'user',
      status: 'accepted',
    });
    expect(back[0]?.tags.some((t) => t.text === 'cat')).toBe(false);
  });

  it('refuses an unknown format by argument', () => {
    expect(() => exportRows(rows, 'xml' as 'csv')).toThrow(ArgumentError);
  });
});
