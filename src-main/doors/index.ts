/**
 * The kit every door (the CLI, the HTTP server, the desktop app) opens the engine with: where the library and
 * the renderer are, the first-run demo library, the engine while it is still opening, one call from outside. server/ holds only the HTTP server, electron/ only the window.
 */
export { bootstrapLibrary, DEMO_MARKER } from './bootstrap.ts';
export { callMethod } from './call.ts';
export { contentSecurityPolicy, defaultLibraryDir, rendererDir, sampleLibraryDir } from './config.ts';
export { deferredEngine } from './deferred.ts';
export { ensureRenderer, rendererStale } from './renderer.ts';
