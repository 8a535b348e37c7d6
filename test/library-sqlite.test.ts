import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  bindingPath,
  currentTarget,
  type NativeModuleError,
  selectBinding,
  targetName,
} from '../src-main/engine/library/index.ts';
import { defaultBinding, loadFailure } from '../src-main/engine/library/sqlite.ts';
import { projectRoot } from '../src-main/engine/paths.ts';

/**
 * Which better-sqlite3 binary each runtime loads. The Electron window cannot run here, so its path is checked
 * with the installed electron package's own version and ABI, as Electron's main process reports them.
 */
const electronPackage = join(projectRoot, 'node_modules', 'electron');
const electron = {
  version: (JSON.parse(readFileSync(join(electronPackage, 'package.json'), 'utf8')) as { version: string })
    .version,
  abi: readFileSync(join(electronPackage, 'abi_version'), 'utf8').trim(),
};
const electronVersions = { ...process.versions, electron: electron.version, modules: electron.abi };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sagasu-native-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('native binding selection', () => {
  it('names a target by runtime, ABI, platform and arch', () => {
    const inElectron = currentTarget(electronVersions, 'linux', 'x64');
    expect(inElectron).toEqual({
      runtime: 'electron',
      version: electron.version,
      abi: electron.abi,
      platform: 'linux',
      arch: 'x64',
    });
    expect(targetName(inElectron)).toBe(`electron-v${electron.abi}-linux-x64`);
    const here = currentTarget();
    expect(here.runtime).toBe('node');
    expect(targetName(here)).toBe(`node-v${process.versions.modules}-${process.platform}-${process.arch}`);
    // Electron 45 embeds Node 22, whose ABI is not the Node 20 one npm ci built for.
    expect(electron.abi).not.toBe(process.versions.modules);
  });

  it("takes Electron's own build when setup made one, and node_modules' otherwise", async () => {
    const target = currentTarget(electronVersions);
    expect(selectBinding(target, dir)).toBe(defaultBinding());
    const own = bindingPath(target, dir);
    await mkdir(dirname(own), { recursive: true });
    await writeFile(own, 'placeholder: only its presence is checked here');
    expect(selectBinding(target, dir)).toBe(own);
    expect(own).toBe(
      join(dir, `electron-v${electron.abi}-${process.platform}-${process.arch}`, 'better_sqlite3.node'),
    );
    // A worker thread of Electron's main process that does not see versions.electron still has its ABI.
    const workerVersions = { ...process.versions, modules: electron.abi };
    expect(selectBinding(currentTarget(workerVersions), dir)).toBe(own);
    // The Node that runs the tests has no build of its own there: it keeps npm ci's, in node_modules.
    expect(selectBinding(currentTarget(), dir)).toBe(defaultBinding());
    expect(existsSync(defaultBinding())).toBe(true);
  });

  it('says what to run when the binary is for another ABI, or missing', () => {
    const mismatch = new Error(
      "The module '/x/better_sqlite3.node' was compiled against a different Node.js version using NODE_MODULE_VERSION 115. This version of Node.js requires NODE_MODULE_VERSION 150.",
    );
    const inElectron = currentTarget(electronVersions);
    const reason = loadFailure('/x/better_sqlite3.node', mismatch, inElectron);
    expect(reason).toContain('built for NODE_MODULE_VERSION 115');
    expect(reason).toContain(`electron ${electron.version} (NODE_MODULE_VERSION ${electron.abi})`);
    expect(reason).toContain('`npm run setup` on a machine with internet');
    expect(reason).toContain(targetName(inElectron));
    const missing = loadFailure(join(dir, 'absent.node'), new Error('Cannot find module'), currentTarget());
    expect(missing).toContain("better-sqlite3's binary is missing");
    expect(missing).toContain('npm run native:build -- --node');
  });
});

describe('opening a catalog with a binary that cannot load', () => {
  const saved = process.env.SAGASU_NATIVE_DIR;
  afterAll(() => {
    if (saved === undefined) delete process.env.SAGASU_NATIVE_DIR;
    else process.env.SAGASU_NATIVE_DIR = saved;
    vi.resetModules();
  });

  async function freshLibrary(nativeDir: string) {
    process.env.SAGASU_NATIVE_DIR = nativeDir;
    vi.resetModules();
    return import('../src-main/engine/library/index.ts');
  }

  it('refuses a damaged binary with a typed error naming it, and opens once it is right', async () => {
    const native = join(dir, 'damaged');
    const own = bindingPath(currentTarget(), native);
    await mkdir(dirname(own), { recursive: true });
    await writeFile(own, 'not a shared library');
    const { Catalog } = await freshLibrary(native);
    const file = join(dir, 'catalog.db');
    let error: unknown;
    try {
      new Catalog(file);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(Error);
    expect((error as NativeModuleError).code).toBe('native-module');
    expect((error as NativeModuleError).subject).toBe(own);
    expect((error as Error).message).toContain('better-sqlite3 cannot be loaded');
    expect(existsSync(file)).toBe(false);
    // The failure is not remembered: with the right binary in place the same process opens the catalog.
    await copyFile(defaultBinding(), own);
    const catalog = new Catalog(file);
    expect(catalog.db.pragma('journal_mode', { simple: true })).toBe('wal');
    catalog.close();
  });

  const node22Build = bindingPath({ ...currentTarget(), runtime: 'node', version: '22', abi: '127' });
  it.skipIf(!existsSync(node22Build))(
    `refuses a build for another Node ABI and says which${existsSync(node22Build) ? '' : ' [skipped: no Node 22 build; the test setup makes it (npm test)]'}`,
    async () => {
      const native = join(dir, 'other-abi');
      const own = bindingPath(currentTarget(), native);
      await mkdir(dirname(own), { recursive: true });
      await copyFile(node22Build, own);
      const { Catalog } = await freshLibrary(native);
      expect(() => new Catalog(join(dir, 'other.db'))).toThrow(
        `better-sqlite3 was built for NODE_MODULE_VERSION 127, but this is node ${process.versions.node} (NODE_MODULE_VERSION ${process.versions.modules})`,
      );
    },
  );
});
