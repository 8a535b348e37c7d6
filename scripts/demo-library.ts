/**
 * npm run demo:build — the bundled demo library (assets/sample-library/, git-ignored) from Debian packages that
 * carry real photographs under free licenses (assets/demo-candidates.tsv, from ../shared/demo-library):
 * `apt-get download` into .cache/, `dpkg -x`, pick the photos (gcompris-qt-data keeps its WebP files inside Qt
 * resource bundles, read by `readRcc` below), convert to JPEG of at most 1600 px, and write ATTRIBUTION plus
 * the license texts that GPL and GFDL photos must travel with. Without apt/dpkg it says so in one line and
 * leaves the library out; the app then starts with "Add folder…".
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { copyFile, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import sharp from 'sharp';
import { cacheDir, projectRoot } from '../src-main/engine/paths.ts';

export const candidatesFile = join(projectRoot, 'assets', 'demo-candidates.tsv');
export const sampleLibrary = join(projectRoot, 'assets', 'sample-library');
const workDir = join(cacheDir, 'demo-library');
export const MAX_SIDE = 1600;

// ---------------------------------------------------------------------------------------------------------
// Qt resource bundles (.rcc): "qres", version, then offsets of a tree of nodes, the payloads and the names.

export interface RccEntry {
  /** Slash-separated path inside the bundle, without a leading slash. */
  path: string;
  bytes: Buffer;
}

const RCC_COMPRESSED = 0x01;
const RCC_DIRECTORY = 0x02;
const RCC_COMPRESSED_ZSTD = 0x04;

export class RccError extends Error {}

/**
 * Every file in a Qt resource bundle (format versions 1 to 3), payloads inflated. A node is a directory
 * (child count, index of its first child) or a file (locale, payload offset); version 2 added a
 * modification time to each node. Compressed payloads are qCompress output: a 4-byte big-endian size, then zlib.
 */
export function readRcc(buffer: Buffer): RccEntry[] {
  if (buffer.length < 20 || buffer.toString('latin1', 0, 4) !== 'qres')
    throw new RccError('not a Qt resource bundle');
  const version = buffer.readUInt32BE(4);
  if (version < 1 || version > 3) throw new RccError(`unsupported rcc version ${version}`);
  const treeOffset = buffer.readUInt32BE(8);
  const dataOffset = buffer.readUInt32BE(12);
  const namesOffset = buffer.readUInt32BE(16);
  const nodeSize = version >= 2 ? 22 : 14;
  const check = (offset: number, length: number, what: string) => {
    if (offset < 0 || offset + length > buffer.length) throw new RccError(`${what} lies outside the bundle`);
  };
  const nameAt = (offset: number): string => {
    const at = namesOffset + offset;
    check(at, 6, 'a name');
    const length = buffer.readUInt16BE(at);
    check(at + 6, length * 2, 'a name');
    // UTF-16 big-endian: swap to the little-endian Node decodes.
    const chars = Buffer.from(buffer.subarray(at + 6, at + 6 + length * 2));
    return chars.swap16().toString('utf16le');
  };
  const entries: RccEntry[] = [];
  const seen = new Set<number>();
  const walk = (index: number, prefix: string) => {
    if (seen.has(index)) throw new RccError('the name tree has a cycle');
    seen.add(index);
    const at = treeOffset + index * nodeSize;
    check(at, nodeSize, 'a tree node');
    const name = index === 0 ? '' : nameAt(buffer.readUInt32BE(at));
    if (name.includes('/') || name === '..' || name === '.')
      throw new RccError(`bad name ${JSON.stringify(name)}`);
    const flags = buffer.readUInt16BE(at + 4);
    const path = prefix && name ? `${prefix}/${name}` : prefix || name;
    if (flags & RCC_DIRECTORY) {
      const count = buffer.readUInt32BE(at + 6);
      const first = buffer.readUInt32BE(at + 10);
      for (let child = first; child < first + count; child++) walk(child, path);
      return;
    }
    const payload = dataOffset + buffer.readUInt32BE(at + 10);
    check(payload, 4, 'a payload');
    const size = buffer.readUInt32BE(payload);
    check(payload + 4, size, 'a payload');
    const raw = buffer.subarray(payload + 4, payload + 4 + size);
    if (flags & RCC_COMPRESSED_ZSTD) throw new RccError(`${path}: zstd payloads are not supported`);
    let bytes: Buffer;
    if (flags & RCC_COMPRESSED) {
      if (raw.length < 4) throw new RccError(`${path}: truncated compressed payload`);
      bytes = inflateSync(raw.subarray(4));
      if (bytes.length !== raw.readUInt32BE(0)) throw new RccError(`${path}: inflated size does not match`);
    } else {
      bytes = Buffer.from(raw);
    }
    entries.push({ path, bytes });
  };
  walk(0, '');
  return entries;
}

// ---------------------------------------------------------------------------------------------------------
// Candidates and their licenses.

export interface Candidate {
  file: string;
  package: string;
  version: string;
  caption: string;
  /** The file's size in the package, to tell apart two files of one name. */
  bytes: number;
  license: string;
  attribution: string;
}

export interface License {
  /** SPDX identifier, or "public domain". */
  id: string;
  /** Where the full text lives online (CC), or null. */
  url: string | null;
  /** For copyleft licenses: the text that must ship beside the photo (a Debian common-licenses file). */
  text: string | null;
}

/** The TSV spells licenses several ways ("CC-BY 2.0", "CC-BY-2.0", "Public domain (NOAA)", "FDL"). */
export function normalizeLicense(spelled: string): License {
  const s = spelled.trim().toLowerCase().replace(/\s+/g, ' ');
  if (/^public domain\b/.test(s)) return { id: 'public domain', url: null, text: null };
  if (s === 'cc0' || s === 'cc0-1.0' || s === 'cc0 1.0')
    return { id: 'CC0-1.0', url: 'https://creativecommons.org/publicdomain/zero/1.0/', text: null };
  const cc = /^cc[- ]by(-sa)?[- ]([234])\.0$/.exec(s);
  if (cc) {
    const sa = cc[1] ? '-SA' : '';
    return {
      id: `CC-BY${sa}-${cc[2]}.0`,
      url: `https://creativecommons.org/licenses/by${sa.toLowerCase()}/${cc[2]}.0/`,
      text: null,
    };
  }
  if (s === 'gpl-2+' || s === 'gpl-2.0-or-later')
    return { id: 'GPL-2.0-or-later', url: null, text: '/usr/share/common-licenses/GPL-2' };
  // Wikimedia Commons' GFDL photos are "version 1.2 or any later version" (palapeli-data's copyright file).
  if (s === 'fdl' || s === 'gnu-fdl' || s === 'gfdl' || s === 'gfdl-1.2+')
    return { id: 'GFDL-1.2-or-later', url: null, text: '/usr/share/common-licenses/GFDL-1.2' };
  throw new Error(`unknown license spelling ${JSON.stringify(spelled)}`);
}

export function readCandidates(file = candidatesFile): Candidate[] {
  const rows = parse(readFileSync(file, 'utf8'), {
    delimiter: '\t',
    columns: true,
    quote: false,
    skip_empty_lines: true,
    relax_column_count: true,
  }) as Array<Record<string, string>>;
  return rows.map((r) => ({
    file: r.file ?? '',
    package: r.package ?? '',
    version: r.version ?? '',
    caption: r.caption ?? '',
    bytes: Number(r.bytes),
    license: r.license ?? '',
    attribution: r.attribution ?? '',
  }));
}

const SHORT: Record<string, string> = {
  'gcompris-qt-data': 'gcompris',
  'lomiri-wallpapers-16.04': 'lomiri',
  'tuxpaint-data': 'tuxpaint',
  'python3-skimage': 'skimage',
  'palapeli-data': 'palapeli',
};

/** Neutral names (package and number): a search can only find a photo by what it shows, not by its name. */
export function neutralNames(candidates: Candidate[]): string[] {
  const counters = new Map<string, number>();
  return candidates.map((c) => {
    const short = SHORT[c.package] ?? c.package.replace(/[^a-z0-9]+/gi, '-');
    const n = (counters.get(short) ?? 0) + 1;
    counters.set(short, n);
    return `${short}-${String(n).padStart(3, '0')}.jpg`;
  });
}

// ---------------------------------------------------------------------------------------------------------
// The build.

function have(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

function run(command: string, args: string[], cwd: string): void {
  const result = spawnSync(command, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (result.status !== 0)
    throw new Error(
      `${command} ${args.join(' ')} failed: ${result.stderr?.trim() || `exit ${result.status}`}`,
    );
}

function findFile(root: string, name: string): string | null {
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    const path = join(root, entry.name);
    if (entry.isDirectory()) {
      const found = findFile(path, name);
      if (found) return found;
    } else if (entry.name === name) return path;
  }
  return null;
}

async function unpacked(pkg: string): Promise<string> {
  const debs = join(workDir, 'debs');
  const target = join(workDir, 'x', pkg);
  // The marker is written last, so an interrupted unpack is redone rather than trusted.
  if (existsSync(`${target}.unpacked`)) return target;
  await rm(target, { recursive: true, force: true });
  await mkdir(debs, { recursive: true });
  const deb = () => readdirSync(debs).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (!deb()) run('apt-get', ['download', pkg], debs);
  const file = deb();
  if (!file) throw new Error(`apt-get download ${pkg} left no .deb`);
  await mkdir(target, { recursive: true });
  run('dpkg', ['-x', join(debs, file), target], debs);
  await writeFile(`${target}.unpacked`, `${file}\n`);
  return target;
}

const bundles = new Map<string, RccEntry[]>();

/** The photo's bytes from its unpacked package; gcompris names are `<bundle>__<file>` inside rcc bundles. */
async function photoBytes(c: Candidate): Promise<Buffer> {
  const root = await unpacked(c.package);
  const name = basename(c.file);
  if (c.package !== 'gcompris-qt-data') {
    const found = findFile(root, name);
    if (!found) throw new Error(`${c.file} is not in ${c.package}`);
    return readFileSync(found);
  }
  const [bundle, inner] = name.split('__');
  if (!bundle || !inner) throw new Error(`${c.file}: expected <bundle>__<file>`);
  let entries = bundles.get(bundle);
  if (!entries) {
    const rcc = findFile(root, `${bundle}.rcc`);
    if (!rcc) throw new Error(`${bundle}.rcc is not in ${c.package}`);
    entries = readRcc(readFileSync(rcc));
    bundles.set(bundle, entries);
  }
  // The list flattens one folder level into the name (explore_monuments' `usa/navajo.webp` is
  // `usa_navajo.webp`); its byte count settles any doubt.
  const names = [`/${inner}`, `/${inner.replace('_', '/')}`];
  const matches = entries.filter((e) => names.some((n) => e.path.endsWith(n)));
  const hit = matches.find((e) => e.bytes.length === c.bytes) ?? matches[0];
  if (!hit) throw new Error(`${inner} is not in ${bundle}.rcc`);
  return hit.bytes;
}

export interface DemoPhoto {
  file: string;
  shows: string;
  license: string;
  licenseUrl: string | null;
  author: string;
  package: string;
  packageVersion: string;
  original: string;
  width: number;
  height: number;
}

function attributionText(photos: DemoPhoto[], licenseFiles: string[]): string {
  const lines = [
    'Sagasu demo library — attribution',
    '',
    'These photographs come from Debian packages (apt-get download, dpkg -x) and were converted to JPEG of at',
    `most ${MAX_SIDE} px by \`npm run demo:build\`. Their file names are neutral on purpose (package and number):`,
    "a search finds a photo by what it shows, never by a word in its name. 'shows' says what each one shows.",
    licenseFiles.length
      ? `GPL and GFDL photos travel with their license texts in LICENSES/ (${licenseFiles.join(', ')}).`
      : 'No GPL or GFDL photo is included.',
    'CC-licensed photos: the license is named by its URL; "modified" notes are the original packagers\'.',
    '',
  ];
  for (const p of photos) {
    lines.push(
      p.file,
      `  shows:   ${p.shows}`,
      `  license: ${p.license}${p.licenseUrl ? ` (${p.licenseUrl})` : ''}`,
      `  author:  ${p.author}`,
      `  from:    Debian package ${p.package} ${p.packageVersion}, ${p.original}; converted to JPEG`,
      '',
    );
  }
  return lines.join('\n');
}

export async function buildDemoLibrary(options: { out?: string; log?: (line: string) => void } = {}) {
  const out = options.out ?? sampleLibrary;
  const log = options.log ?? ((line: string) => console.error(`demo:build: ${line}`));
  if (!have('apt-get') || !have('dpkg')) {
    log('apt-get/dpkg are not available here (not Debian/Ubuntu): no demo library is built');
    return null;
  }
  const candidates = readCandidates();
  const names = neutralNames(candidates);
  await rm(out, { recursive: true, force: true });
  await mkdir(join(out, 'LICENSES'), { recursive: true });
  const photos: DemoPhoto[] = [];
  const licenseFiles = new Set<string>();
  const skipped: string[] = [];
  for (const [i, c] of candidates.entries()) {
    const file = names[i] as string;
    const license = normalizeLicense(c.license);
    if (license.text && !existsSync(license.text)) {
      skipped.push(`${c.file} (${license.id}: no license text at ${license.text})`);
      continue;
    }
    let bytes: Buffer;
    try {
      bytes = await photoBytes(c);
    } catch (error) {
      skipped.push(`${c.file} (${(error as Error).message})`);
      continue;
    }
    const info = await sharp(bytes)
      .rotate()
      .resize({ width: MAX_SIDE, height: MAX_SIDE, fit: 'inside', withoutEnlargement: true })
      .flatten({ background: '#ffffff' })
      .jpeg({ quality: 88, mozjpeg: true })
      .toFile(join(out, file));
    if (license.text) {
      const name = basename(license.text);
      if (!licenseFiles.has(name)) await copyFile(license.text, join(out, 'LICENSES', name));
      licenseFiles.add(name);
    }
    photos.push({
      file,
      shows: c.caption,
      license: license.id,
      licenseUrl: license.url,
      author: c.attribution,
      package: c.package,
      packageVersion: c.version,
      original: c.file,
      width: info.width,
      height: info.height,
    });
  }
  if (licenseFiles.size === 0) await rm(join(out, 'LICENSES'), { recursive: true, force: true });
  await writeFile(join(out, 'ATTRIBUTION'), attributionText(photos, [...licenseFiles]));
  await writeFile(join(out, 'attribution.json'), `${JSON.stringify(photos, null, 2)}\n`);
  for (const s of skipped) log(`left out ${s}`);
  log(`${photos.length} photos in ${out}`);
  return { out, photos, skipped };
}

/** The photo files of a built library (what an indexer sees). */
export async function libraryPhotos(dir = sampleLibrary): Promise<string[]> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  return (await readdir(dir)).filter((f) => f.endsWith('.jpg')).sort();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildDemoLibrary();
}
