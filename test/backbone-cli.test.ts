import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../src-main/engine/paths.ts';

/** Runs one of the npm-script commands directly, as `npm run` does. */
function command(script: string, args: string[]) {
  return promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', join(projectRoot, 'src-main', 'cli', script), ...args],
    { cwd: projectRoot },
  ).then(
    () => ({ code: 0, stderr: '' }),
    (error: { code: number; stderr: string }) => error,
  );
}

describe('--backbone on the commands that compute features', () => {
  it.each(['stats-compute.ts', 'data-prepare.ts'])(
    '%s: an unknown backbone is refused by name with the choices, before any image is read',
    async (script) => {
      const result = await command(script, ['--backbone', 'vgg16']);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain("option '--backbone <name>' argument 'vgg16' is invalid");
      expect(result.stderr).toContain('expected mobilenet_v2 or resnet50');
      expect(result.stderr).not.toMatch(/\n\s+at /);
    },
  );
});
