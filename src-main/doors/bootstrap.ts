import { existsSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { photoType, type RootInfo, type SagasuApi } from '../contract/index.ts';

/** Written once the demo library has been offered, so removing its root is not undone on the next start. */
export const DEMO_MARKER = 'demo-library-offered';

export interface BootstrapResult {
  /** The demo root just added (indexing has started), or null. */
  added: RootInfo | null;
  /** Why nothing was added, for the log line. */
  reason: string;
}

function hasPhotos(dir: string): boolean {
  try {
    return readdirSync(dir).some((name) => photoType(name) !== null);
  } catch {
    return false;
  }
}

/**
 * First run, shared by both doors: a library with no roots gets the bundled demo library as its first root
 * and starts indexing it, so a new user sees results within seconds. Only once per library.
 */
export async function bootstrapLibrary(
  api: SagasuApi,
  options: { libraryDir: string; demoDir: string },
): Promise<BootstrapResult> {
  const marker = join(options.libraryDir, DEMO_MARKER);
  if (existsSync(marker)) return { added: null, reason: 'the demo library was offered before' };
  const status = await api.invoke('status', {});
  if (status.roots.length > 0) return { added: null, reason: 'the library already has folders' };
  if (!hasPhotos(options.demoDir))
    return { added: null, reason: `no demo library at ${options.demoDir} (npm run demo:build)` };
  const added = await api.invoke('roots.add', { path: options.demoDir });
  await api.invoke('index.start', { rootId: added.id });
  await mkdir(options.libraryDir, { recursive: true });
  await writeFile(marker, `${options.demoDir}\n`);
  return { added, reason: 'first run: the demo library is being indexed' };
}
