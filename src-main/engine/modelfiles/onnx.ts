import type * as ort from 'onnxruntime-node';
import { ModelError } from '../errors.ts';

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
