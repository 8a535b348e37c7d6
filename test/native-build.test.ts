import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../src-main/engine/paths.ts';

/** npm run native:build refuses what it cannot build for in one line, before copying or compiling anything. */
async function nativeBuild(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', join(projectRoot, 'src-main', 'cli', 'native-build.ts'), ...args],
    { cwd: projectRoot, env: { ...process.env, SAGASU_NATIVE_DIR: nativeDir } },
  ).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
}

let nativeDir: string;
beforeAll(async () => {
  nativeDir = await mkdtemp(join(tmpdir(), 'sagasu-native-build-'));
});
afterAll(async () => {
  await rm(nativeDir, { recursive: true, force: true });
});

describe('npm run native:build', () => {
  it('wants exactly one of --node and --electron', async () => {
    for (const args of [[], ['--electron', '--node', process.execPath]]) {
      const result = await nativeBuild(args);
      expect(result.code).toBe(1);
      expect(result.stderr.trim()).toBe('native:build: --node/--electron: give exactly one');
    }
  });

  it('refuses a --node that is not a Node binary, naming it', async () => {
    const notNode = join(nativeDir, 'node');
    await writeFile(notNode, 'not a program', { mode: 0o644 });
    for (const binary of [join(nativeDir, 'absent'), notNode]) {
      const result = await nativeBuild(['--node', binary]);
      expect(result.code).toBe(1);
      const lines = result.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`native:build: --node: ${binary} does not run as Node`);
    }
  });
});
