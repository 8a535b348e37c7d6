#!/usr/bin/env node
// npm start: the desktop app when Electron's binary is installed; otherwise one line saying so, and the same
// UI served to the browser (npm run serve: it prints the URL and opens nothing). Arguments go to the server.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const electronDir = join(root, 'node_modules', 'electron');

/** The binary electron's installer left in dist/ (path.txt names it), or null when it could not download it. */
export function electronBinary(dir = electronDir, platform = process.platform) {
  const named = existsSync(join(dir, 'path.txt')) ? readFileSync(join(dir, 'path.txt'), 'utf8').trim() : '';
  const fallback =
    platform === 'win32'
      ? 'electron.exe'
      : platform === 'darwin'
        ? 'Electron.app/Contents/MacOS/Electron'
        : 'electron';
  const binary = join(dir, 'dist', named || fallback);
  return existsSync(binary) ? binary : null;
}

function run(command, args) {
  const child = spawn(command, args, { cwd: root, stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const binary = electronBinary();
  if (binary) {
    run(binary, [join(root, 'src-main', 'electron', 'boot.mjs')]);
  } else {
    console.error(
      'sagasu: the Electron binary is not installed (node_modules/electron/dist); serving the same UI to your browser instead',
    );
    run(process.execPath, [
      '--import',
      'tsx',
      join(root, 'src-main', 'server', 'main.ts'),
      ...process.argv.slice(2),
    ]);
  }
}
