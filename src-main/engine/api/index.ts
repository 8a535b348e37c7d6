export {
  Engine,
  type EngineHost,
  type EngineOptions,
  openEngine,
  readOnlyStatus,
} from './engine.ts';
export { EngineWorker, openEngineWorker } from './worker.ts';
