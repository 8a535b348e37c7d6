import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../src-main/engine/paths.ts';

describe('npm run stats:compute', () => {
  it('an unknown --backbone is refused by name with the choices, before any image is read', async () => {
    const result = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', join(projectRoot, 'src-main', 'cli', 'stats-compute.ts'), '--backbone', 'vgg16'],
      { cwd: projectRoot },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("option '--backbone <name>' argument 'vgg16' is invalid");
    expect(result.stderr).toContain('expected mobilenet_v2 or resnet50');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
