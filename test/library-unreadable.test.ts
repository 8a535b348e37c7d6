import { execFile, spawn } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Status } from '../src-main/contract/index.ts';
import { Library } from '../src-main/engine/library/index.ts';
import { flickrPhotos, tempDir } from './helpers/library-fixtures.ts';
import { skipNote } from './helpers/shared.ts';

const note = skipNote({ shared: true, cnn: true });
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const child = fileURLToPath(new URL('./helpers/library-child.ts', import.meta.url));
const cli = fileURLToPath(new URL('../src-main/cli/main.ts', import.meta.url));
// Root lists any folder whatever its mode: the indexing that must be refused runs as nobody.
const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;
// A bound for stuck children, not a measure: each CLI call and child loads the models on busy cores.
const TIMEOUT = 600_000;

/** `sagasu status` on the library, as JSON and as text (as nobody, for a library nobody's child writes). */
async function sagasuStatus(
  dir: string,
  nobody = false,
  withText = true,
): Promise<{ json: Status; text: string }> {
  const run = (...extra: string[]) =>
    promisify(execFile)(process.execPath, ['--import', tsx, cli, 'status', '--library', dir, ...extra], {
      ...(nobody && asRoot ? { uid: NOBODY, gid: NOBODY } : {}),
    });
  const [json, text] = [await run('--json'), withText ? (await run()).stdout : ''];
  return { json: JSON.parse(json.stdout) as Status, text };
}

/** Indexes `root` into the library `dir` in a child process (as nobody when this test runs as root). */
function indexInChild(dir: string, root: string): Promise<void> {
  const proc = spawn(process.execPath, ['--import', tsx, child, 'index', dir, root], {
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(asRoot ? { uid: NOBODY, gid: NOBODY } : {}),
  });
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  return new Promise((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`indexing child failed (${code}): ${stderr}`)),
    );
  });
}

describe.skipIf(note !== '')(`library: what cannot be read is reported in sagasu status${note}`, () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeAll(() => {
    tmp = tempDir('unreadable');
    chmodSync(tmp.dir, 0o755);
  });
  afterAll(() => tmp?.cleanup());

  it(
    'a file and a folder whose names are not UTF-8 are failed with the reason, not silently left out',
    async () => {
      const [a, b, c] = flickrPhotos(3) as [string, string, string];
      const root = join(tmp.dir, 'photos');
      mkdirSync(root);
      copyFileSync(a, join(root, basename(a)));
      // Latin-1 names, as an old camera card or a zip from another system leaves them.
      const badFile = Buffer.concat([Buffer.from(`${root}/caf`), Buffer.from([0xe9]), Buffer.from('.jpg')]);
      const badDir = Buffer.concat([Buffer.from(`${root}/Ann`), Buffer.from([0xe9, 0x65])]);
      copyFileSync(b, badFile);
      mkdirSync(badDir);
      copyFileSync(c, Buffer.concat([badDir, Buffer.from('/inside.jpg')]));
      // Not a photo by its extension: not reported, as any other non-photo file.
      writeFileSync(
        Buffer.concat([Buffer.from(`${root}/notes`), Buffer.from([0xff]), Buffer.from('.txt')]),
        'x',
      );

      const dir = join(tmp.dir, 'lib-names');
      const lib = await Library.open({ dir, workers: 1 });
      try {
        lib.roots.add(root);
        expect(await lib.indexer.run()).toMatchObject({ state: 'done', total: 1, failed: 0 });
        expect(lib.roots.list()[0]).toMatchObject({ images: 1, failed: 2 });
      } finally {
        await lib.close();
      }
      const reason = 'its name is not valid UTF-8, so it cannot be opened by name; rename it to index it';
      const { json, text } = await sagasuStatus(dir);
      expect(json.failures).toEqual([
        { path: join(root, 'Ann\uFFFDe'), reason },
        { path: join(root, 'caf\uFFFD.jpg'), reason },
      ]);
      expect(json.images).toMatchObject({ indexed: 1, failed: 0 });
      expect(text).toContain('1 indexed, 0 pending, 2 could not be read');
      expect(text).toContain(`could not read ${join(root, 'caf\uFFFD.jpg')}: ${reason}`);
    },
    TIMEOUT,
  );

  it(
    'a folder that cannot be listed is failed with the reason, and the photos indexed in it before are kept',
    async () => {
      const [a, b] = flickrPhotos(2) as [string, string];
      const root = join(tmp.dir, 'shared photos');
      const locked = join(root, 'private');
      mkdirSync(locked, { recursive: true });
      copyFileSync(a, join(root, basename(a)));
      copyFileSync(b, join(locked, basename(b)));
      const dir = join(tmp.dir, 'lib-locked');
      mkdirSync(dir);
      if (asRoot) chownSync(dir, NOBODY, NOBODY);

      await indexInChild(dir, root);
      expect((await sagasuStatus(dir, true, false)).json).toMatchObject({
        images: { indexed: 2 },
        failures: [],
      });

      chmodSync(locked, 0o000);
      try {
        await indexInChild(dir, root);
      } finally {
        chmodSync(locked, 0o755);
      }
      const { json, text } = await sagasuStatus(dir, true);
      const reason =
        'the folder cannot be listed (EACCES): photos in it are not indexed, and those indexed before are kept';
      expect(json.failures).toEqual([{ path: locked, reason }]);
      expect(json.images).toMatchObject({ total: 2, indexed: 2 });
      expect(json.roots[0]).toMatchObject({ online: true, images: 2, failed: 1 });
      expect(text).toContain(`could not read ${locked}: ${reason}`);

      // Readable again: the next walk clears the report.
      await indexInChild(dir, root);
      expect((await sagasuStatus(dir, true, false)).json).toMatchObject({
        images: { indexed: 2 },
        failures: [],
      });
    },
    TIMEOUT,
  );
});
