/**
 * A second Sagasu process for the lock and crash tests. Prints one JSON line per event on stdout.
 *   hold <libraryDir>                     open the library, print {"open":pid}, keep it open until killed
 *   index <libraryDir> <root> [point[:n]] open, add the root when new, index to the end, close, print {"done":...}
 * With a halt point (src-main/engine/library/halt.ts), the n-th time (default 1) indexing reaches it the child
 * prints {"halt":point} and stops right there, for the test to kill it at that exact moment.
 * Usage: node --import <tsx loader URL> library-child.ts <command> ...
 */
import { writeSync } from 'node:fs';
import { SagasuError } from '../../src-main/engine/errors.ts';
import { type HaltPoint, onHaltPoint } from '../../src-main/engine/library/halt.ts';
import { Library } from '../../src-main/engine/library/index.ts';

const [command, dir, root, halt] = process.argv.slice(2);
if (!dir || (command !== 'hold' && command !== 'index'))
  throw new Error('usage: library-child.ts hold|index <dir> [root] [point[:n]]');
// Synchronous, so the line is out before the halt blocks this thread.
const say = (value: unknown) => writeSync(1, `${JSON.stringify(value)}\n`);

if (halt) {
  const [point, nth] = halt.split(':') as [HaltPoint, string | undefined];
  let seen = 0;
  onHaltPoint((reached) => {
    if (reached !== point || ++seen < Number(nth ?? 1)) return;
    say({ halt: point, seen });
    // Blocks this thread (and so indexing, mid-step) until the test kills the process.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  });
}

try {
  // Checkpoints after every batch: a run crosses several index saves, each one a point to halt at.
  const lib = await Library.open({ dir, workers: 1, batchSize: 4, checkpointSeconds: 0 });
  say({ open: process.pid });
  if (command === 'hold') {
    setInterval(() => {}, 1 << 30);
  } else {
    if (!root) throw new Error('index needs a root');
    if (!lib.roots.list().some((r) => r.path === root)) lib.roots.add(root);
    const result = await lib.indexer.run({ onProgress: (p) => say({ progress: p.done, state: p.state }) });
    const counts = lib.counts();
    await lib.close();
    say({ done: result, counts });
  }
} catch (error) {
  if (!(error instanceof SagasuError)) throw error;
  say({ error: { code: error.code, subject: error.subject, message: error.message } });
  process.exitCode = 3;
}
