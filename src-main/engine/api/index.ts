export {
  Engine,
  type EngineHost,
  type EngineOptions,
  openEngine,
  readOnlyStatus,
} from './engine.ts';
export { openEngineWorker } from './worker.ts';
