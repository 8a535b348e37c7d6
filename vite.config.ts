import { fileURLToPath } from 'node:url';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('./src-renderer', import.meta.url));

// The renderer is one static bundle: the HTTP server serves .cache/renderer and Electron loads the same files.
export default defineConfig({
  root,
  // Relative asset URLs so the bundle works from http://127.0.0.1:<port>/ and from a file or custom protocol.
  base: './',
  plugins: [svelte({ compilerOptions: { runes: true } })],
  build: {
    outDir: fileURLToPath(new URL('./.cache/renderer', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // The strict CSP forbids inline scripts; vite's module preload polyfill would be one.
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 800,
  },
  server: { host: '127.0.0.1' },
});
