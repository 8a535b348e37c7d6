import type { EngineHost } from '../engine/api/index.ts';

/**
 * A door's engine while the real one is still opening (models load for seconds): the server can listen and
 * serve the page at once, and calls made meanwhile wait for the engine, or carry its failure to open.
 */
export function deferredEngine(opening: Promise<EngineHost>): EngineHost {
  // Each call reports a failure to open; this keeps it from also being an unhandled rejection.
  opening.catch(() => {});
  return {
    async invoke(method, input) {
      return (await opening).invoke(method, input);
    },
    on(event, listener) {
      let off: (() => void) | null = null;
      let stopped = false;
      opening.then(
        (engine) => {
          if (!stopped) off = engine.on(event, listener);
        },
        () => {},
      );
      return () => {
        stopped = true;
        off?.();
      };
    },
    async media(imageId, kind, size) {
      return (await opening).media(imageId, kind, size);
    },
    async whenIdle() {
      return (await opening).whenIdle();
    },
    async close() {
      const engine = await opening.catch(() => null);
      await engine?.close();
    },
  };
}
