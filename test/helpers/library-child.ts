/**
 * A second Sagasu process for the lock and crash tests. Prints one JSON line per event on stdout.
 *   hold <libraryDir>           open the library, print {"open":pid}, keep it open until killed
 *   index <libraryDir> <root>   open, add the root when new, index to the end, close, print {"done":...}
 * Usage: node --import <tsx loader URL> library-child.ts <command> ...
 */
import { SagasuError } from '../../src-main/engine/errors.ts';
import { Library } from '../../src-main/engine/library/index.ts';

const [command, dir, root] = process.argv.slice(2);
if (!dir || (command !== 'hold' && command !== 'index'))
  throw new Error('usage: library-child.ts hold|index <dir> [root]');
const say = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

try {
  const lib = await Library.open({ dir, workers: 1, batchSize: 4, checkpointSeconds: 1 });
  say({ open: process.pid });
  if (command === 'hold') {
    setInterval(() => {}, 1 << 30);
  } else {
    if (!root) throw new Error('index needs a root');
    if (!lib.roots().some((r) => r.path === root)) lib.addRoot(root);
    const result = await lib.index({ onProgress: (p) => say({ progress: p.done, state: p.state }) });
    const counts = lib.counts();
    await lib.close();
    say({ done: result, counts });
  }
} catch (error) {
  if (!(error instanceof SagasuError)) throw error;
  say({ error: { code: error.code, subject: error.subject, message: error.message } });
  process.exitCode = 3;
}
