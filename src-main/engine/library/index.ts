/**
 * The library room: catalog (SQLite), search index (HNSW and classes), roots, walker, indexer and watcher.
 * Other rooms import only this file.
 */
export { Catalog, CatalogError, type ImageRecord, type ImageStatus } from './catalog.ts';
export { idleProgress } from './indexer.ts';
export { CATALOG_FILE, INDEX_FILE, Library, type LibraryOptions } from './library.ts';
export { LibraryLockedError, LOCK_FILE } from './lock.ts';
export { cosine, dequantize, quantize } from './quantize.ts';
export {
  bindingPath,
  currentTarget,
  NativeModuleError,
  type NativeTarget,
  selectBinding,
  targetName,
} from './sqlite.ts';
export { DEFAULT_HNSW, type HnswParams, IndexSaveError, VectorIndex } from './vector-index.ts';
export { walk } from './walker.ts';
