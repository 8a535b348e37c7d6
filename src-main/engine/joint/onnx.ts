import * as ort from 'onnxruntime-node';
import { chooseProviders, currentProviderEnvironment, type ProviderName } from '../cnn/providers.ts';
import { ModelError } from '../errors.ts';

export interface OnnxOptions {
  /** Try these providers in order (default: chooseProviders on this machine, as the CNN does). */
  providers?: ProviderName[];
  /** Threads for one inference; default: every core. */
  threads?: number;
  log?: (line: string) => void;
}

/**
 * A session over model bytes that were already checked against their manifest: the bytes that were hashed are
 * the bytes that run, so a file swapped between the check and the load cannot slip in. Providers are tried
 * best first, falling back to the CPU, as for the CNN.
 */
export async function openVerifiedSession(
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

/** Checks that a session has the inputs and output the model directory's contract names. */
export function requireIo(
  session: ort.InferenceSession,
  file: string,
  inputs: readonly string[],
  output: string,
): void {
  const missing = inputs.filter((name) => !session.inputNames.includes(name));
  if (missing.length > 0 || !session.outputNames.includes(output))
    throw new ModelError(
      'invalid-model',
      file,
      `expected inputs ${inputs.join(', ')} and output ${output}; the graph has inputs ${session.inputNames.join(', ')} and outputs ${session.outputNames.join(', ')}`,
    );
}

/** The float32 output `name` of a run, refused by file name unless it has exactly the expected shape. */
export function floatOutput(
  result: ort.InferenceSession.OnnxValueMapType,
  name: string,
  file: string,
  shape: readonly number[],
): Float32Array {
  const tensor = result[name];
  const dims = tensor ? [...tensor.dims] : [];
  if (tensor?.type !== 'float32' || dims.length !== shape.length || dims.some((d, k) => d !== shape[k]))
    throw new ModelError(
      'invalid-model',
      file,
      `returned ${name} as ${tensor ? `${tensor.type} [${dims.join(', ')}]` : 'nothing'}, expected float32 [${shape.join(', ')}]`,
    );
  return tensor.data as Float32Array;
}
