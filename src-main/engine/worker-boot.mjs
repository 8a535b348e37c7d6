// A worker thread's first module when its entry is TypeScript source (worker-start.ts). The worker does not
// inherit the tsx loader its parent registered through tsx's API (bin/sagasu.js, electron/boot.mjs), and on
// Node 20 a `--import tsx` in its execArgv is not in place yet when an ES module entry is resolved (a
// CommonJS first module, as Piscina's own, hides this): so tsx is registered here, then the entry imported.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const entry = await import(workerData.entry);
// A Piscina pool runs the default export of its file for each task.
export default entry.default;
