// Electron's entry point: the main process runs the TypeScript sources through tsx, as bin/sagasu.js does for
// the CLI, so the engine is the same code in every door. Only the sandboxed preload is bundled (build.ts).
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
