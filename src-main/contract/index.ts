/**
 * The contract at the bottom of the house: what the engine answers, every door (CLI, HTTP, Electron IPC) and
 * the renderer call. It imports nothing above it.
 */
export * from './bridge.ts';
export * from './methods.ts';
export * from './photo-files.ts';
