import { existsSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { ModelError } from '../errors.ts';

/** onnxruntime-node's execution-provider names. */
export type ProviderName = 'cuda' | 'dml' | 'coreml' | 'cpu';

interface ProviderEnvironment {
  platform: NodeJS.Platform;
  /** Backends this onnxruntime-node build can load (its listSupportedBackends()). */
  backends: { name: string; bundled: boolean }[];
  /** An NVIDIA driver is present (Linux). */
  nvidiaDriver: boolean;
  /** SAGASU_EP: a provider name, or a comma-separated order; 'auto' or empty means choose. */
  override: string | undefined;
}

function currentProviderEnvironment(backends: ProviderEnvironment['backends']): ProviderEnvironment {
  return {
    platform: process.platform,
    backends,
    nvidiaDriver: existsSync('/proc/driver/nvidia/version'),
    override: process.env.SAGASU_EP,
  };
}

/**
 * The order in which to try execution providers, best first, always ending with CPU so a session can
 * fall back. CUDA also needs onnxruntime's CUDA libraries, which its install script downloads; when
 * they are missing the session creation fails and the caller moves on to the next provider.
 */
export function chooseProviders(env: ProviderEnvironment): ProviderName[] {
  const override = env.override?.trim().toLowerCase();
  if (override && override !== 'auto') {
    const asked = override.split(',').map((p) => p.trim()) as ProviderName[];
    const known: ProviderName[] = ['cuda', 'dml', 'coreml', 'cpu'];
    const bad = asked.filter((p) => !known.includes(p));
    if (bad.length > 0)
      throw new Error(
        `SAGASU_EP: unknown execution provider ${bad.join(', ')} (use ${known.join(', ')} or auto)`,
      );
    return asked.includes('cpu') ? asked : [...asked, 'cpu'];
  }
  const available = (name: string) => env.backends.some((b) => b.name === name);
  if (env.platform === 'linux' && env.nvidiaDriver && available('cuda')) return ['cuda', 'cpu'];
  if (env.platform === 'win32' && available('dml')) return ['dml', 'cpu'];
  if (env.platform === 'darwin' && available('coreml')) return ['coreml', 'cpu'];
  return ['cpu'];
}

export interface OnnxOptions {
  /** Try these providers in order (default: chooseProviders on this machine). */
  providers?: ProviderName[];
  /** Threads for one inference; default: every core. */
  threads?: number;
  log?: (line: string) => void;
}

/**
 * A session over model bytes that were already checked against their manifest: the bytes that were hashed are
 * the bytes that run, so a file swapped between the check and the load cannot slip in. Providers are tried
 * best first, falling back to the CPU; `log` says which one runs and why the others did not.
 */
export async function openSession(
  file: string,
  bytes: Uint8Array,
  what: string,
  options: OnnxOptions = {},
): Promise<{ session: ort.InferenceSession; provider: ProviderName }> {
  const providers =
    options.providers ?? chooseProviders(currentProviderEnvironment(ort.listSupportedBackends()));
  const failures: string[] = [];
  for (const provider of providers) {
    try {
      const session = await ort.InferenceSession.create(bytes, {
        executionProviders: [provider],
        graphOptimizationLevel: 'all',
        ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
      });
      options.log?.(
        `${what}: on the ${provider} execution provider${failures.length ? ` (${failures.join('; ')})` : ''}`,
      );
      return { session, provider };
    } catch (error) {
      failures.push(`${provider} unavailable: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  throw new ModelError('invalid-model', file, `no execution provider could load it: ${failures.join('; ')}`);
}
