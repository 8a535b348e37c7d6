const boot = new URL('./worker-boot.mjs', import.meta.url);

/**
 * How a worker thread (the engine's, a decode pool's) starts one of our entries: a built .js as it is, a .ts
 * source through worker-boot.mjs, which registers tsx inside the worker first. The one way every worker starts.
 */
export function workerStart<D extends object>(
  entry: URL,
  workerData: D,
): { filename: URL; workerData: D & { entry?: string } } {
  return entry.pathname.endsWith('.ts')
    ? { filename: boot, workerData: { ...workerData, entry: entry.href } }
    : { filename: entry, workerData };
}
