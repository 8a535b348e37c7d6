/**
 * The installers' Electron fuses, read from electron-builder.yml as electron-builder reads them (the
 * `electronFuses` mapping). The binary itself cannot be downloaded here, so the config is what is checked.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../src-main/engine/paths.ts';

const config = readFileSync(join(projectRoot, 'electron-builder.yml'), 'utf8').split('\n');

/** A top-level mapping of scalars (`key:` then `  name: value` lines), comments and blank lines skipped. */
function topLevelMapping(key: string): Record<string, string> | null {
  const start = config.findIndex((line) => line.replace(/\s+#.*$/, '') === `${key}:`);
  if (start < 0) return null;
  const mapping: Record<string, string> = {};
  for (const line of config.slice(start + 1)) {
    if (/^\s*(#.*)?$/.test(line)) continue;
    const match = /^ {2}(\w+):\s*([^#\s]+)\s*(?:#.*)?$/.exec(line);
    if (!match) break;
    mapping[match[1] as string] = match[2] as string;
  }
  return mapping;
}

describe('electron fuses in the installer config', () => {
  it('turns off RunAsNode, NODE_OPTIONS and the inspect arguments, turns on cookie encryption and ASAR integrity', () => {
    expect(topLevelMapping('electronFuses')).toEqual({
      runAsNode: 'false',
      enableNodeOptionsEnvironmentVariable: 'false',
      enableNodeCliInspectArguments: 'false',
      enableCookieEncryption: 'true',
      enableEmbeddedAsarIntegrityValidation: 'true',
      onlyLoadAppFromAsar: 'true',
      grantFileProtocolExtraPrivileges: 'false',
    });
  });

  it('packs the app into an asar archive, which the integrity and asar-only fuses need', () => {
    expect(config.filter((line) => /^asar\s*:/.test(line))).toEqual([]);
    expect(config.filter((line) => line.startsWith('electronFuses:'))).toHaveLength(1);
  });
});
