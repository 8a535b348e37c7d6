// Runs the TypeScript worker entry from source: a worker thread does not inherit a tsx loader that the parent
// registered through tsx's API (bin/sagasu.js), nor one given as `--import` in its execArgv on Node 20.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
