import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import {
  libraryPhotos,
  MAX_SIDE,
  neutralNames,
  normalizeLicense,
  RccError,
  readCandidates,
  readRcc,
  sampleLibrary,
} from '../scripts/demo-library.ts';
import { cacheDir, projectRoot } from '../src-main/engine/paths.ts';

/**
 * A Qt resource bundle written the way rcc writes one (big-endian; names as length, hash, UTF-16; files as
 * size + payload, compressed ones as qCompress = 4-byte size + zlib), to test the reader on every branch.
 */
type Tree = { [name: string]: Tree | { bytes: Buffer; compress?: boolean } };

function writeRcc(tree: Tree, version = 3): Buffer {
  const nodeSize = version >= 2 ? 22 : 14;
  const names: Buffer[] = [];
  const nameOffsets = new Map<string, number>();
  let namesLength = 0;
  const nameOffset = (name: string) => {
    const known = nameOffsets.get(name);
    if (known !== undefined) return known;
    const chars = Buffer.from(name, 'utf16le').swap16();
    const head = Buffer.alloc(6);
    head.writeUInt16BE(name.length, 0);
    head.writeUInt32BE(0x5a5a, 2);
    names.push(head, chars);
    nameOffsets.set(name, namesLength);
    namesLength += 6 + chars.length;
    return nameOffsets.get(name) as number;
  };
  const payloads: Buffer[] = [];
  let dataLength = 0;
  // Breadth-first, as rcc does: a directory's children are consecutive nodes.
  type Node = { name: string; dir?: Tree; file?: { bytes: Buffer; compress?: boolean } };
  const nodes: Node[] = [{ name: '', dir: tree }];
  const firstChild = new Map<number, number>();
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i] as Node;
    if (!node.dir) continue;
    firstChild.set(i, nodes.length);
    for (const [name, value] of Object.entries(node.dir)) {
      if (Buffer.isBuffer((value as { bytes?: unknown }).bytes))
        nodes.push({ name, file: value as Node['file'] });
      else nodes.push({ name, dir: value as Tree });
    }
  }
  const treeBuf = Buffer.alloc(nodes.length * nodeSize);
  nodes.forEach((node, i) => {
    const at = i * nodeSize;
    treeBuf.writeUInt32BE(i === 0 ? 0 : nameOffset(node.name), at);
    if (node.dir) {
      treeBuf.writeUInt16BE(0x02, at + 4);
      treeBuf.writeUInt32BE(Object.keys(node.dir).length, at + 6);
      treeBuf.writeUInt32BE(firstChild.get(i) ?? 0, at + 10);
    } else if (node.file) {
      let body = node.file.bytes;
      if (node.file.compress) {
        const size = Buffer.alloc(4);
        size.writeUInt32BE(body.length, 0);
        body = Buffer.concat([size, deflateSync(body)]);
      }
      treeBuf.writeUInt16BE(node.file.compress ? 0x01 : 0, at + 4);
      treeBuf.writeUInt32BE(dataLength, at + 10);
      const size = Buffer.alloc(4);
      size.writeUInt32BE(body.length, 0);
      payloads.push(size, body);
      dataLength += 4 + body.length;
    }
  });
  const header = Buffer.alloc(version >= 3 ? 24 : 20);
  header.write('qres', 0, 'latin1');
  header.writeUInt32BE(version, 4);
  const data = Buffer.concat(payloads);
  const nameBuf = Buffer.concat(names);
  const treeOffset = header.length;
  header.writeUInt32BE(treeOffset, 8);
  header.writeUInt32BE(treeOffset + treeBuf.length, 12);
  header.writeUInt32BE(treeOffset + treeBuf.length + data.length, 16);
  return Buffer.concat([header, treeBuf, data, nameBuf]);
}

const photo = Buffer.from('RIFF....WEBPVP8 not really a photo but bytes that must survive unchanged');
const readme = Buffer.from('Copyright: someone\nLicense: CC0-1.0\nFiles: café.webp\n'.repeat(20));

describe('Qt resource bundles (readRcc)', () => {
  for (const version of [1, 2, 3]) {
    it(`reads nested folders, raw and zlib payloads and UTF-16 names (version ${version})`, () => {
      const bundle = writeRcc(
        {
          gcompris: {
            activities: {
              erase: {
                resource: { 'café.webp': { bytes: photo }, README: { bytes: readme, compress: true } },
              },
            },
          },
          'top.txt': { bytes: Buffer.from('top'), compress: true },
        },
        version,
      );
      const entries = readRcc(bundle);
      expect(entries.map((e) => e.path).sort()).toEqual([
        'gcompris/activities/erase/resource/README',
        'gcompris/activities/erase/resource/café.webp',
        'top.txt',
      ]);
      const byPath = new Map(entries.map((e) => [e.path, e.bytes]));
      expect(byPath.get('gcompris/activities/erase/resource/café.webp')?.equals(photo)).toBe(true);
      expect(byPath.get('gcompris/activities/erase/resource/README')?.equals(readme)).toBe(true);
      expect(byPath.get('top.txt')?.toString()).toBe('top');
    });
  }

  it('refuses what is not a bundle, truncated bundles and cycles', () => {
    const good = writeRcc({ a: { 'b.webp': { bytes: photo } } });
    expect(() => readRcc(Buffer.from('PK\u0003\u0004 a zip file, not a bundle'))).toThrow(RccError);
    expect(() => readRcc(good.subarray(0, good.length - 40))).toThrow(RccError);
    const future = Buffer.from(good);
    future.writeUInt32BE(9, 4);
    expect(() => readRcc(future)).toThrow(/version 9/);
    const cycle = Buffer.from(good);
    // Node 1 ("a") claims node 0 (the root) as its child.
    cycle.writeUInt32BE(0, 24 + 22 + 10);
    expect(() => readRcc(cycle)).toThrow(RccError);
    const badZlib = writeRcc({ 'x.txt': { bytes: readme, compress: true } });
    // Header (24) + two nodes (44), then the payload's size and qCompress size (8): the zlib stream.
    badZlib.fill(0xff, 24 + 44 + 8 + 2, 24 + 44 + 8 + 12);
    expect(() => readRcc(badZlib)).toThrow();
  });

  const eraseRcc = join(cacheDir, 'demo-library/x/gcompris-qt-data/usr/share/gcompris-qt/rcc/erase.rcc');
  const gcompris = existsSync(eraseRcc)
    ? ''
    : ' [skipped: gcompris-qt-data is not unpacked under .cache/demo-library; run npm run demo:build]';
  it.skipIf(gcompris !== '')(
    `reads the real gcompris erase bundle: photos and its README${gcompris}`,
    async () => {
      const entries = readRcc(readFileSync(eraseRcc));
      const alpaca = entries.find((e) => e.path.endsWith('/alpaca.webp'));
      // The size the candidates list gives for it, and a real 1920x1080 WebP inside.
      expect(alpaca?.bytes.length).toBe(79704);
      const meta = await sharp(alpaca?.bytes).metadata();
      expect(meta).toMatchObject({ format: 'webp', width: 1920, height: 1080 });
      const notes = entries.find((e) => e.path.endsWith('/README'))?.bytes.toString('utf8') ?? '';
      expect(notes).toContain('Dietmar Rabich');
      expect(notes).toContain('alpaca.webp');
    },
  );
});

describe('demo candidates', () => {
  const candidates = readCandidates();

  it('lists the photos of the five packages', () => {
    expect(candidates.length).toBe(154);
    expect(new Set(candidates.map((c) => c.package))).toEqual(
      new Set([
        'gcompris-qt-data',
        'lomiri-wallpapers-16.04',
        'tuxpaint-data',
        'python3-skimage',
        'palapeli-data',
      ]),
    );
    expect(candidates.every((c) => c.caption.length > 5 && c.attribution.length > 2)).toBe(true);
  });

  it('normalizes every license spelling, and refuses an unknown one', () => {
    for (const c of candidates) expect(() => normalizeLicense(c.license), c.license).not.toThrow();
    expect(normalizeLicense('CC-BY 2.0')).toEqual(normalizeLicense('CC-BY-2.0'));
    expect(normalizeLicense('CC-BY-SA 4.0').id).toBe('CC-BY-SA-4.0');
    expect(normalizeLicense('Public domain (NOAA)').id).toBe('public domain');
    expect(normalizeLicense('Public Domain')).toEqual(normalizeLicense('Public domain'));
    expect(normalizeLicense('CC0').id).toBe('CC0-1.0');
    expect(normalizeLicense('FDL')).toEqual(normalizeLicense('GNU-FDL'));
    expect(normalizeLicense('GPL-2+').text).toBe('/usr/share/common-licenses/GPL-2');
    expect(() => normalizeLicense('All rights reserved')).toThrow(/unknown license/);
    const ids = new Set(candidates.map((c) => normalizeLicense(c.license).id));
    expect([...ids].sort()).toEqual(
      [
        'CC-BY-2.0',
        'CC-BY-3.0',
        'CC-BY-4.0',
        'CC-BY-SA-4.0',
        'CC0-1.0',
        'GFDL-1.2-or-later',
        'GPL-2.0-or-later',
        'public domain',
      ].sort(),
    );
  });

  it('names files neutrally: unique, and no word of what they show', () => {
    const names = neutralNames(candidates);
    expect(new Set(names).size).toBe(names.length);
    for (const [i, name] of names.entries()) {
      expect(name).toMatch(/^(gcompris|lomiri|tuxpaint|skimage|palapeli)-\d{3}\.jpg$/);
      const words = (candidates[i]?.caption ?? '').toLowerCase().match(/[a-z]{3,}/g) ?? [];
      for (const word of words) expect(name.replace(/-\d+\.jpg$/, '')).not.toContain(word);
    }
  });
});

const built = existsSync(join(sampleLibrary, 'attribution.json'))
  ? ''
  : ' [skipped: assets/sample-library is not built; npm run demo:build needs apt-get and dpkg]';

describe(`the built demo library${built}`, () => {
  it.skipIf(built !== '')(
    'holds JPEGs of at most 1600 px, each attributed with a normalized license',
    async () => {
      const files = await libraryPhotos();
      const listed = JSON.parse(await readFile(join(sampleLibrary, 'attribution.json'), 'utf8')) as Array<{
        file: string;
        shows: string;
        license: string;
        author: string;
        width: number;
        height: number;
      }>;
      expect(files.length).toBeGreaterThanOrEqual(100);
      expect(listed.map((p) => p.file).sort()).toEqual(files);
      const text = await readFile(join(sampleLibrary, 'ATTRIBUTION'), 'utf8');
      expect(text).toMatch(/neutral/);
      for (const p of listed) {
        expect(text).toContain(`${p.file}\n  shows:   ${p.shows}`);
        expect(p.author.length).toBeGreaterThan(2);
      }
      // Every 10th file decoded for real (all of them would be slow on two cores).
      for (const p of listed.filter((_, i) => i % 10 === 0)) {
        const meta = await sharp(join(sampleLibrary, p.file)).metadata();
        expect(meta.format).toBe('jpeg');
        expect(Math.max(meta.width ?? 0, meta.height ?? 0)).toBeLessThanOrEqual(MAX_SIDE);
        expect([meta.width, meta.height]).toEqual([p.width, p.height]);
      }
      for (const p of listed) expect(Math.max(p.width, p.height)).toBeLessThanOrEqual(MAX_SIDE);
      const copyleft = listed.filter((p) => p.license.startsWith('GPL') || p.license.startsWith('GFDL'));
      if (copyleft.some((p) => p.license.startsWith('GPL')))
        expect(readFileSync(join(sampleLibrary, 'LICENSES', 'GPL-2'), 'utf8')).toContain(
          'GNU GENERAL PUBLIC LICENSE',
        );
      if (copyleft.some((p) => p.license.startsWith('GFDL')))
        expect(readFileSync(join(sampleLibrary, 'LICENSES', 'GFDL-1.2'), 'utf8')).toContain(
          'Free Documentation',
        );
    },
  );
});

describe('demo:build without apt', () => {
  it('says so in one line and builds nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sagasu-noapt-'));
    try {
      // A PATH holding node and sh only: no apt-get, no dpkg.
      await mkdir(join(dir, 'bin'));
      await symlink(process.execPath, join(dir, 'bin', 'node'));
      await symlink('/bin/sh', join(dir, 'bin', 'sh'));
      const out = join(dir, 'library');
      const script = `const m = await import(${JSON.stringify(join(projectRoot, 'scripts', 'demo-library.ts'))});
        process.stdout.write(String(await m.buildDemoLibrary({ out: ${JSON.stringify(out)} })));`;
      const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: projectRoot,
        env: { PATH: join(dir, 'bin'), HOME: dir },
        encoding: 'utf8',
      });
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toBe('null');
      expect(run.stderr.trim().split('\n')).toEqual([
        'demo:build: apt-get/dpkg are not available here (not Debian/Ubuntu): no demo library is built',
      ]);
      expect(existsSync(out)).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
