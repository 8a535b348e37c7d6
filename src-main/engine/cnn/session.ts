import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { ModelError } from '../errors.ts';
import type { ConvertedCnn } from './converter.ts';
import { INPUT_IMAGE, OUTPUT_FNE, OUTPUT_ONE_LAYER, OUTPUT_PROBS } from './converter.ts';
import { type OnnxOptions, openSession, type ProviderName } from './providers.ts';

interface CnnOutputs {
  /** Row-major [n, fneDim]: each conv layer's spatial mean, concatenated in graph order. */
  fneRaw: Float32Array;
  /** Row-major [n, oneLayerDim]. */
  oneLayer: Float32Array;
  /** Row-major [n, classes]. */
  probs: Float32Array;
}

type CnnSessionOptions = OnnxOptions;

export interface CnnModelInfo extends Omit<ConvertedCnn, 'onnx'> {
  mode: string;
}

/** One onnxruntime session over a converted CNN: uint8 NHWC pixels in, Full-Network outputs out. */
export class CnnSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly info: CnnModelInfo,
    readonly provider: ProviderName,
  ) {}

  static async open(
    modelFile: string,
    info: CnnModelInfo,
    options: CnnSessionOptions = {},
  ): Promise<CnnSession> {
    let model: Uint8Array;
    try {
      model = await readFile(modelFile);
    } catch (cause) {
      throw new ModelError(
        'missing',
        modelFile,
        'the CNN model is not built yet; run `npm run models:prepare`',
        { cause },
      );
    }
    const { session, provider } = await openSession(modelFile, model, `cnn: ${info.mode} model`, options);
    return new CnnSession(session, info, provider);
  }

  /** `pixels` holds `n` images of inputSize x inputSize x 3 uint8 RGB, back to back. */
  async run(pixels: Uint8Array, n: number, outputs: 'all' | 'probs' = 'all'): Promise<CnnOutputs> {
    const size = this.info.inputSize;
    if (pixels.length !== n * size * size * 3) {
      throw new RangeError(`pixels: expected ${n}x${size}x${size}x3 bytes, got ${pixels.length}`);
    }
    const feeds = { [INPUT_IMAGE]: new ort.Tensor('uint8', pixels, [n, size, size, 3]) };
    const fetches = outputs === 'all' ? [OUTPUT_FNE, OUTPUT_ONE_LAYER, OUTPUT_PROBS] : [OUTPUT_PROBS];
    const result = await this.session.run(feeds, fetches);
    const data = (name: string) => (result[name]?.data as Float32Array | undefined) ?? new Float32Array(0);
    return { fneRaw: data(OUTPUT_FNE), oneLayer: data(OUTPUT_ONE_LAYER), probs: data(OUTPUT_PROBS) };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
