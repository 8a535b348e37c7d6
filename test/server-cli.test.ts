import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultLibraryDir, rendererStale } from '../src-main/doors/index.ts';
import { LOCK_FILE } from '../src-main/engine/library/index.ts';
import { projectRoot } from '../src-main/engine/paths.ts';
import { skipNote } from './helpers/shared.ts';

// @ts-expect-error: a plain ES module without types, tested as npm start runs it
const { electronBinary } = (await import('../scripts/start.mjs')) as {
  electronBinary(dir: string, platform?: string): string | null;
};

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sagasu-cli-'));
  dirs.push(dir);
  return dir;
}

describe('library folder and Electron detection', () => {
  it('puts the library in the OS data folder unless SAGASU_LIBRARY_DIR says otherwise', () => {
    expect(defaultLibraryDir({}, 'linux', '/home/ann')).toBe('/home/ann/.local/share/sagasu');
    expect(defaultLibraryDir({ XDG_DATA_HOME: '/data' }, 'linux', '/home/ann')).toBe('/data/sagasu');
    expect(defaultLibraryDir({}, 'darwin', '/Users/ann')).toBe(
      '/Users/ann/Library/Application Support/Sagasu',
    );
    expect(
      defaultLibraryDir({ APPDATA: 'C:\\Users\\ann\\AppData\\Roaming' }, 'win32', 'C:\\Users\\ann'),
    ).toBe(join('C:\\Users\\ann\\AppData\\Roaming', 'Sagasu'));
    expect(defaultLibraryDir({ SAGASU_LIBRARY_DIR: '/srv/photos-lib' }, 'linux', '/home/ann')).toBe(
      '/srv/photos-lib',
    );
  });

  it('takes an empty or relative XDG_DATA_HOME as unset, as the XDG spec says', () => {
    for (const XDG_DATA_HOME of ['', 'data'])
      expect(defaultLibraryDir({ XDG_DATA_HOME }, 'linux', '/home/ann')).toBe(
        '/home/ann/.local/share/sagasu',
      );
    expect(defaultLibraryDir({ SAGASU_LIBRARY_DIR: '', XDG_DATA_HOME: '' }, 'linux', '/home/ann')).toBe(
      '/home/ann/.local/share/sagasu',
    );
  });

  it('sagasu and sagasu serve open the same library when XDG_DATA_HOME is empty', async () => {
    const home = await tempDir();
    const cwd = join(home, 'work');
    await mkdir(cwd);
    const { SAGASU_LIBRARY_DIR: _, ...inherited } = process.env;
    const env = { ...inherited, HOME: home, XDG_DATA_HOME: '' };
    const run = async (args: string[], where = cwd) => {
      const child = spawn(process.execPath, args, { cwd: where, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (chunk) => {
        out += chunk;
      });
      const code = await new Promise((done) => child.on('close', done));
      // commander wraps long help lines; the path is what matters, not where a line breaks.
      return { code, out: out.replace(/\s+/g, ' ') };
    };
    const expected = join(home, '.local', 'share', 'sagasu');
    const [status, serve] = await Promise.all([
      run([join(projectRoot, 'bin', 'sagasu.js'), 'status']),
      // From the checkout, where `--import tsx` resolves; --help opens nothing.
      run(['--import', 'tsx', 'src-main/server/main.ts', '--help'], projectRoot),
    ]);
    expect(status.code).toBe(0);
    expect(existsSync(join(expected, 'catalog.db'))).toBe(true);
    expect(existsSync(join(cwd, 'sagasu'))).toBe(false);
    expect(serve.out).toContain(`(default: "${expected}")`);
  });

  it('finds the Electron binary only where its installer left one', async () => {
    const dir = await tempDir();
    expect(electronBinary(dir, 'linux')).toBeNull();
    await mkdir(join(dir, 'dist'));
    expect(electronBinary(dir, 'linux')).toBeNull();
    await writeFile(join(dir, 'dist', 'electron'), '');
    expect(electronBinary(dir, 'linux')).toBe(join(dir, 'dist', 'electron'));
    await writeFile(join(dir, 'path.txt'), 'electron.exe');
    expect(electronBinary(dir, 'win32')).toBeNull();
    await writeFile(join(dir, 'dist', 'electron.exe'), '');
    expect(electronBinary(dir, 'win32')).toBe(join(dir, 'dist', 'electron.exe'));
    // This checkout: electron is installed for its types only, so npm start takes the browser path.
    expect(electronBinary(join(projectRoot, 'node_modules', 'electron'))).toBeNull();
  });
});

describe('renderer build check', () => {
  it('asks for a build when the renderer is missing or older than any of its sources', async () => {
    const root = await tempDir();
    const built = join(root, 'built');
    await mkdir(join(root, 'src-renderer', 'components'), { recursive: true });
    await writeFile(join(root, 'src-renderer', 'components', 'App.svelte'), '<p>hi</p>');
    await writeFile(join(root, 'vite.config.ts'), 'export default {}');
    expect(rendererStale(root, built)).toBe(true);
    await mkdir(built);
    await writeFile(join(built, 'index.html'), '<!doctype html>');
    const now = Date.now() / 1000;
    await utimes(join(root, 'src-renderer', 'components', 'App.svelte'), now - 100, now - 100);
    await utimes(join(root, 'src-renderer', 'components'), now - 100, now - 100);
    await utimes(join(root, 'src-renderer'), now - 100, now - 100);
    await utimes(join(root, 'vite.config.ts'), now - 100, now - 100);
    expect(rendererStale(root, built)).toBe(false);
    await utimes(join(root, 'src-renderer', 'components', 'App.svelte'), now + 5, now + 5);
    expect(rendererStale(root, built)).toBe(true);
  });
});

const note = skipNote({ cnn: true });

describe(`npm start without Electron${note}`, () => {
  it.skipIf(note !== '')(
    'says so in one line, serves the UI on 127.0.0.1 with a token, and stops cleanly',
    async () => {
      const library = await tempDir();
      const child = spawn(
        process.execPath,
        [join(projectRoot, 'scripts', 'start.mjs'), '--no-demo', '--no-build'],
        {
          cwd: projectRoot,
          env: { ...process.env, SAGASU_LIBRARY_DIR: library },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
      });
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (chunk) => {
          out += chunk;
          if (out.includes('\n')) resolve(out.split('\n')[0] as string);
        });
        void exited.then((code) => reject(new Error(`exited ${code} before printing a URL: ${stderr}`)));
      });
      try {
        expect(stderr.split('\n')[0]).toMatch(/Electron binary is not installed.*browser/);
        const match = /^http:\/\/127\.0\.0\.1:(\d+)\/#token=([\w-]{32})$/.exec(url);
        expect(match, url).not.toBeNull();
        const [, port, token] = match as RegExpExecArray;
        const status = await fetch(`http://127.0.0.1:${port}/api/call/status`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}` },
        });
        expect(status.status).toBe(200);
        const body = (await status.json()) as { result: { roots: unknown[] } };
        expect(body.result.roots).toEqual([]);
        expect((await fetch(`http://127.0.0.1:${port}/api/call/status`, { method: 'POST' })).status).toBe(
          401,
        );
      } finally {
        child.kill('SIGTERM');
      }
      expect(await exited).toBe(0);
    },
  );

  it.skipIf(note !== '')('says in one line when the port is taken, and exits 1', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const library = await tempDir();
      const run = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(
          process.execPath,
          [
            '--import',
            'tsx',
            join(projectRoot, 'src-main', 'server', 'main.ts'),
            '--port',
            String(port),
            '--no-build',
          ],
          {
            cwd: projectRoot,
            env: { ...process.env, SAGASU_LIBRARY_DIR: library },
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let stderr = '';
        child.stderr.on('data', (chunk) => {
          stderr += chunk;
        });
        child.on('exit', (code) => resolve({ code, stderr }));
      });
      expect(run.code).toBe(1);
      expect(run.stderr.trim()).toBe(
        `sagasu serve: --port: port ${port} is in use; pick another or leave --port out`,
      );
    } finally {
      blocker.close();
    }
  });

  it.skipIf(note !== '')(
    'a WebSocket refused for a wrong token is closed, and SIGTERM still stops the server and frees the library',
    async () => {
      const library = await tempDir();
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', join(projectRoot, 'src-main', 'server', 'main.ts'), '--no-demo', '--no-build'],
        {
          cwd: projectRoot,
          env: { ...process.env, SAGASU_LIBRARY_DIR: library },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      try {
        const url = await new Promise<string>((resolve, reject) => {
          let out = '';
          child.stdout.on('data', (chunk) => {
            out += chunk;
            if (out.includes('\n')) resolve(out.split('\n')[0] as string);
          });
          void exited.then((code) => reject(new Error(`exited ${code} before printing a URL`)));
        });
        const { port, hash } = new URL(url);
        const token = hash.slice('#token='.length);
        // Once this answers, the engine is open and the server's signal handlers are in place.
        const status = await fetch(`http://127.0.0.1:${port}/api/call/status`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}` },
        });
        expect(status.status).toBe(200);
        expect(existsSync(join(library, LOCK_FILE))).toBe(true);
        // A stale tab: an upgrade with the token of an earlier run, the socket left open on our side.
        const socket = connect(Number(port), '127.0.0.1');
        let answer = '';
        socket.on('data', (chunk) => {
          answer += chunk;
        });
        const closedByServer = new Promise<void>((resolve) => socket.on('close', () => resolve()));
        socket.write(
          [
            `GET /api/events?token=${'x'.repeat(token.length)} HTTP/1.1`,
            `Host: 127.0.0.1:${port}`,
            'Connection: Upgrade',
            'Upgrade: websocket',
            'Sec-WebSocket-Version: 13',
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
            '',
            '',
          ].join('\r\n'),
        );
        await closedByServer;
        expect(answer).toMatch(/^HTTP\/1\.1 401/);
        child.kill('SIGTERM');
        expect(await exited).toBe(0);
        expect(existsSync(join(library, LOCK_FILE))).toBe(false);
      } finally {
        child.kill('SIGKILL');
      }
    },
  );
});
