import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * onnxruntime-node 1.30.0 segfaults creating any InferenceSession once the process's command line passes
 * about 30 KB (README, "Known issues"), which `sagasu features ~/Pictures/*.jpg` reaches at ~600 photos.
 * Past LONG_ARGV bytes the CLI runs itself again with a short command line and receives the arguments
 * through an extra pipe (file descriptor 3), so stdin stays free for `--files-from -`.
 */
export const LONG_ARGV = 16 * 1024;
const ARGV_FD = 'SAGASU_ARGV_FD';

/** How long a command line is, in bytes, as the kernel holds it. */
export function argvBytes(args: readonly string[]): number {
  return args.reduce((n, a) => n + Buffer.byteLength(a) + 1, 0);
}

/**
 * Call first thing, before anything loads onnxruntime. Returns null when this process should go on and run
 * the command (its process.argv restored when it is the relaunched one), else the exit code of the
 * relaunched process, which ran the command instead.
 */
export async function relaunchIfArgvLong(): Promise<number | null> {
  const fd = process.env[ARGV_FD];
  if (fd !== undefined) {
    delete process.env[ARGV_FD];
    const args = JSON.parse(readFileSync(Number(fd), 'utf8')) as string[];
    process.argv = [...process.argv.slice(0, 2), ...args];
    return null;
  }
  const args = process.argv.slice(2);
  if (argvBytes(process.argv) <= LONG_ARGV) return null;
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1] as string], {
    env: { ...process.env, [ARGV_FD]: '3' },
    stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
  });
  // Ctrl-C reaches both processes (one process group); the child decides what it means.
  const ignore = () => {};
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  const term = forward('SIGTERM');
  process.on('SIGINT', ignore);
  process.on('SIGTERM', term);
  const pipe = child.stdio[3] as NodeJS.WritableStream;
  pipe.on('error', () => {}); // a child that died first: its exit says why
  pipe.end(JSON.stringify(args));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (c, s) => resolve([c, s]));
  });
  process.off('SIGINT', ignore);
  process.off('SIGTERM', term);
  if (signal) {
    process.kill(process.pid, signal);
    return 128;
  }
  return code ?? 1;
}
