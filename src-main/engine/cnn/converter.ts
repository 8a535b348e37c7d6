import { ModelError } from '../errors.ts';
import { DataType, OnnxGraphBuilder } from './onnx-writer.ts';
import { Padding, TensorType, type TfliteModel, type TfliteOperator, type TfliteTensor } from './tflite.ts';

/**
 * `float`: weights dequantized to float32, activations float; ReLU6 restored from the activation ranges.
 * `qdq`: the original uint8 weights and every activation's QuantizeLinear/DequantizeLinear pair, so
 * onnxruntime runs integer kernels as the TFLite interpreter does.
 */
export type CnnMode = 'float' | 'qdq';
export const CNN_MODES: readonly CnnMode[] = ['float', 'qdq'];

export interface LayerInfo {
  /** Position among the pooled layers, in graph order. */
  index: number;
  name: string;
  /**
   * conv / depthwise: the layer's own activation. block: a residual block's last conv, pooled as the block
   * output (after the residual ADD and its ReLU). shortcut: a projection shortcut conv (after its BatchNorm).
   */
  kind: 'conv' | 'depthwise' | 'block' | 'shortcut';
  /** The source model's tensor that is pooled, where it is not the conv's own output (Keras layer name). */
  pooled?: string;
  /** First column of this layer in `fne_raw`. */
  offset: number;
  channels: number;
  height: number;
  width: number;
  /** The output's quantization step: parity tolerances are stated in these (0 for a float source model). */
  scale: number;
  zeroPoint: number;
}

export interface ConvertedCnn {
  onnx: Uint8Array;
  layers: LayerInfo[];
  fneDim: number;
  /** The layer fed to the one-layer baseline (the last conv before global pooling). */
  oneLayer: LayerInfo;
  inputSize: number;
  classes: number;
}

interface ConvertOptions {
  mode: CnnMode;
  /** false builds the plain classifier (only `probs`), for measuring what the Full-Network outputs cost. */
  fullNetwork?: boolean;
  producerVersion?: string;
  file?: string;
}

export const OUTPUT_FNE = 'fne_raw';
export const OUTPUT_ONE_LAYER = 'one_layer';
export const OUTPUT_PROBS = 'probs';
export const INPUT_IMAGE = 'image';

export function convertTfliteToOnnx(model: TfliteModel, options: ConvertOptions): ConvertedCnn {
  const file = options.file ?? 'model.tflite';
  const fullNetwork = options.fullNetwork ?? true;
  const g = new OnnxGraphBuilder();
  const conv = new Converter(model, options.mode, g, file);

  const inputTensor = tensorAt(model, model.inputs[0], file);
  const [, height, width, channels] = inputTensor.shape;
  if (inputTensor.type !== TensorType.UINT8 || !height || !width || channels !== 3 || height !== width) {
    throw new ModelError('invalid-model', file, 'expected one uint8 NHWC RGB square image input');
  }
  g.input(INPUT_IMAGE, DataType.UINT8, ['batch', height, width, 3]);
  conv.bindInput(inputTensor, INPUT_IMAGE);

  const lastPool = model.operators.findLastIndex((op) => op.kind === 'AVERAGE_POOL_2D');
  const pooled: { info: LayerInfo; tensor: string; index: number }[] = [];
  for (const [i, op] of model.operators.entries()) {
    conv.emit(op);
    // Convolutions after the global pool are the classifier head (logits), not image features.
    if ((op.kind === 'CONV_2D' || op.kind === 'DEPTHWISE_CONV_2D') && i < lastPool) {
      const out = tensorAt(model, op.outputs[0], file);
      const [, h = 0, w = 0, c = 0] = out.shape;
      const info: LayerInfo = {
        index: pooled.length,
        name: out.name,
        kind: op.kind === 'CONV_2D' ? 'conv' : 'depthwise',
        offset: pooled.reduce((sum, p) => sum + p.info.channels, 0),
        channels: c,
        height: h,
        width: w,
        scale: out.quantization?.scale[0] ?? 0,
        zeroPoint: out.quantization?.zeroPoint[0] ?? 0,
      };
      pooled.push({ info, tensor: '', index: out.index });
    }
  }
  if (fullNetwork) {
    // GlobalAveragePool rather than ReduceMean: onnxruntime runs it inside its blocked (NCHWc) conv layout,
    // so only the [N, C, 1, 1] result is reordered, not every full activation map.
    const gap = (t: TfliteTensor) => g.node('GlobalAveragePool', [conv.floatOf(t)], `${t.name}/pooled`);
    const residualOf = residualAdds(model);
    for (const p of pooled) {
      const add = options.mode === 'float' ? residualOf.get(p.index) : undefined;
      const out = model.tensors[p.index] as TfliteTensor;
      // A residual block's project conv feeds only its ADD. Reading the conv output a second time would stop
      // onnxruntime from fusing the ADD into the conv (measured: +25 % conv time); the mean is linear, so
      // mean(conv) = mean(add output) - mean(skip input) gives the same value (exact in float; in qdq the
      // ADD's requantization would leak in, so qdq pools the conv output itself).
      p.tensor = add
        ? g.node(
            'Sub',
            [gap(model.tensors[add.output] as TfliteTensor), gap(model.tensors[add.skip] as TfliteTensor)],
            `${out.name}/pooled`,
          )
        : gap(out);
    }
  }
  const oneLayer = pooled.at(-1);
  if (!oneLayer) throw new ModelError('invalid-model', file, 'no convolution before the global pool');
  const fneDim = oneLayer.info.offset + oneLayer.info.channels;
  const outputTensor = tensorAt(model, model.outputs[0], file);
  const classes = outputTensor.shape.at(-1) ?? 0;

  if (fullNetwork) {
    const concat = g.node(
      'Concat',
      pooled.map((p) => p.tensor),
      'fne_concat',
      { axis: 1 },
    );
    g.output(OUTPUT_FNE, g.node('Flatten', [concat], 'fne_flat', { axis: 1 }), DataType.FLOAT, [
      'batch',
      fneDim,
    ]);
    const one = g.node('Flatten', [oneLayer.tensor], 'one_layer_flat', { axis: 1 });
    g.output(OUTPUT_ONE_LAYER, one, DataType.FLOAT, ['batch', oneLayer.info.channels]);
  }
  g.output(OUTPUT_PROBS, conv.floatOf(outputTensor), DataType.FLOAT, ['batch', classes]);

  const layers = pooled.map((p) => p.info);
  const onnx = g.encode({
    graphName: `${model.description || 'tflite'} (${options.mode})`,
    opset: 17,
    producerVersion: options.producerVersion ?? '0',
    docString: `Converted by Sagasu from ${file} in ${options.mode} mode${fullNetwork ? ' with Full-Network outputs' : ''}.`,
    metadata: { mode: options.mode, fne_dim: String(fneDim), one_layer: oneLayer.info.name },
  });
  return { onnx, layers, fneDim, oneLayer: oneLayer.info, inputSize: height, classes };
}

/** For each conv output whose only consumer is an ADD: that ADD's output and its other (skip) input. */
function residualAdds(model: TfliteModel): Map<number, { output: number; skip: number }> {
  const consumers = new Map<number, number>();
  for (const op of model.operators) for (const i of op.inputs) consumers.set(i, (consumers.get(i) ?? 0) + 1);
  const result = new Map<number, { output: number; skip: number }>();
  for (const op of model.operators) {
    if (op.kind !== 'ADD') continue;
    const [a, b] = op.inputs as [number, number];
    const out = op.outputs[0] as number;
    for (const [conv, skip] of [
      [a, b],
      [b, a],
    ] as const) {
      const producer = model.operators.find((p) => p.outputs[0] === conv);
      if (producer?.kind === 'CONV_2D' && consumers.get(conv) === 1) result.set(conv, { output: out, skip });
    }
  }
  return result;
}

function tensorAt(model: TfliteModel, index: number | undefined, file: string): TfliteTensor {
  const t = index === undefined ? undefined : model.tensors[index];
  if (!t) throw new ModelError('invalid-model', file, `tensor index ${index} out of range`);
  return t;
}

function quantOf(t: TfliteTensor, file: string): { scale: number; zeroPoint: number } {
  const q = t.quantization;
  if (q?.scale.length !== 1) {
    throw new ModelError('unsupported-op', file, `tensor ${t.name} is not per-tensor quantized`);
  }
  return { scale: q.scale[0] ?? 0, zeroPoint: q.zeroPoint[0] ?? 0 };
}

/** Copies constant bytes out of the flatbuffer into an aligned typed array. */
function constant<T extends Uint8Array | Int32Array>(
  t: TfliteTensor,
  kind: 'uint8' | 'int32',
  file: string,
): T {
  if (!t.data) throw new ModelError('invalid-model', file, `tensor ${t.name} has no data`);
  // new Uint8Array(view) copies; a Node Buffer's slice() would not.
  const copy = new Uint8Array(t.data);
  return (kind === 'uint8' ? copy : new Int32Array(copy.buffer, 0, copy.byteLength / 4)) as T;
}

/** [O, H, W, I] (TFLite) to [O, I, H, W] (ONNX). */
function ohwiToOihw<T extends Uint8Array | Float32Array>(
  src: T,
  [o, h, w, i]: [number, number, number, number],
  dst: T,
): T {
  for (let a = 0; a < o; a++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let c = 0; c < i; c++)
          dst[((a * i + c) * h + y) * w + x] = src[((a * h + y) * w + x) * i + c] as number;
  return dst;
}

/** TensorFlow "SAME": output = ceil(in / stride); the odd extra pad goes after (bottom/right). */
export function samePads(inSize: number, kernel: number, stride: number, dilation: number): [number, number] {
  const out = Math.ceil(inSize / stride);
  const total = Math.max((out - 1) * stride + (kernel - 1) * dilation + 1 - inSize, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

class Converter {
  /** Float (dequantized) value of each activation, by TFLite tensor index. */
  private readonly floats = new Map<number, string>();
  /** uint8 value of each activation in qdq mode. */
  private readonly quantized = new Map<number, string>();

  constructor(
    private readonly model: TfliteModel,
    private readonly mode: CnnMode,
    private readonly g: OnnxGraphBuilder,
    private readonly file: string,
  ) {}

  floatOf(t: TfliteTensor): string {
    const name = this.floats.get(t.index);
    if (!name)
      throw new ModelError('invalid-model', this.file, `tensor ${t.name} is used before it is computed`);
    return name;
  }

  private tensor(index: number | undefined): TfliteTensor {
    return tensorAt(this.model, index, this.file);
  }

  bindInput(t: TfliteTensor, input: string): void {
    const { scale, zeroPoint } = quantOf(t, this.file);
    const nchw = this.g.node('Transpose', [input], `${t.name}/nchw`, { perm: [0, 3, 1, 2] });
    if (this.mode === 'qdq') {
      this.quantized.set(t.index, nchw);
      this.floats.set(t.index, this.dequantize(nchw, scale, zeroPoint, t.name));
    } else {
      const f = this.g.node('Cast', [nchw], `${t.name}/float`, { to: DataType.FLOAT });
      const centred = this.g.node(
        'Sub',
        [f, this.g.scalarFloat(`${t.name}/zero_point`, zeroPoint)],
        `${t.name}/centred`,
      );
      this.floats.set(
        t.index,
        this.g.node('Mul', [centred, this.g.scalarFloat(`${t.name}/scale`, scale)], t.name),
      );
    }
  }

  private dequantize(q: string, scale: number, zeroPoint: number, base: string): string {
    const s = this.g.scalarFloat(`${base}/dq_scale`, scale);
    const z = this.g.initializer(`${base}/dq_zero_point`, DataType.UINT8, [], Uint8Array.of(zeroPoint));
    return this.g.node('DequantizeLinear', [q, s, z], `${base}/dequantized`);
  }

  /**
   * Gives the float result `value` of an op the identity of TFLite tensor `out`: in qdq mode through
   * QuantizeLinear (the interpreter's uint8 output) and back; in float mode clamped to the same range.
   */
  private bindOutput(out: TfliteTensor, value: string): void {
    const { scale, zeroPoint } = quantOf(out, this.file);
    if (this.mode === 'qdq') {
      const s = this.g.scalarFloat(`${out.name}/q_scale`, scale);
      const z = this.g.initializer(`${out.name}/q_zero_point`, DataType.UINT8, [], Uint8Array.of(zeroPoint));
      const q = this.g.node('QuantizeLinear', [value, s, z], `${out.name}/quantized`);
      this.quantized.set(out.index, q);
      this.floats.set(out.index, this.dequantize(q, scale, zeroPoint, out.name));
    } else if (zeroPoint === 0) {
      // A range that starts at 0 is how the quantized graph encodes its fused ReLU/ReLU6: keep it as a Clip
      // (onnxruntime fuses it into the conv). Other ranges only saturate outliers, so float mode drops them.
      const lo = this.g.scalarFloat(`${out.name}/min`, 0);
      const hi = this.g.scalarFloat(`${out.name}/max`, 255 * scale);
      this.floats.set(out.index, this.g.node('Clip', [value, lo, hi], out.name));
    } else {
      this.floats.set(out.index, value);
    }
  }

  emit(op: TfliteOperator): void {
    const out = this.tensor(op.outputs[0]);
    switch (op.kind) {
      case 'CONV_2D':
      case 'DEPTHWISE_CONV_2D':
        this.bindOutput(out, this.convolution(op, out));
        return;
      case 'ADD': {
        const [a, b] = op.inputs.map((i) => this.floatOf(this.tensor(i)));
        this.bindOutput(out, this.g.node('Add', [a as string, b as string], `${out.name}/add`));
        return;
      }
      case 'AVERAGE_POOL_2D': {
        const x = this.tensor(op.inputs[0]);
        const { filterH, filterW, strideH, strideW, padding } = op.options;
        const [, h = 0, w = 0] = x.shape;
        const [top, bottom] = padding === Padding.SAME ? samePads(h, filterH, strideH, 1) : [0, 0];
        const [left, right] = padding === Padding.SAME ? samePads(w, filterW, strideW, 1) : [0, 0];
        const pooled = this.g.node('AveragePool', [this.floatOf(x)], `${out.name}/pool`, {
          kernel_shape: [filterH, filterW],
          strides: [strideH, strideW],
          pads: [top, left, bottom, right],
          count_include_pad: 0,
        });
        this.bindOutput(out, pooled);
        return;
      }
      case 'RESHAPE': {
        // The only reshape in these classifiers squeezes [N,1,1,C] to [N,C]; Flatten keeps the batch dynamic.
        const x = this.tensor(op.inputs[0]);
        const [, h, w] = x.shape;
        if (out.shape.length !== 2 || h !== 1 || w !== 1) {
          throw new ModelError(
            'unsupported-op',
            this.file,
            `RESHAPE of ${x.name} is not a [N,1,1,C] squeeze`,
          );
        }
        if (this.mode === 'qdq') {
          const q = this.quantized.get(x.index) as string;
          const flat = this.g.node('Flatten', [q], `${out.name}/flat`, { axis: 1 });
          const { scale, zeroPoint } = quantOf(out, this.file);
          this.quantized.set(out.index, flat);
          this.floats.set(out.index, this.dequantize(flat, scale, zeroPoint, out.name));
        } else {
          this.floats.set(out.index, this.g.node('Flatten', [this.floatOf(x)], out.name, { axis: 1 }));
        }
        return;
      }
      case 'SOFTMAX': {
        const x = this.tensor(op.inputs[0]);
        let logits = this.floatOf(x);
        if (op.options.beta !== 1)
          logits = this.g.node(
            'Mul',
            [logits, this.g.scalarFloat(`${out.name}/beta`, op.options.beta)],
            `${out.name}/scaled`,
          );
        const probs = this.g.node('Softmax', [logits], `${out.name}/softmax`, { axis: -1 });
        // In float mode the probabilities stay unquantized: the 1/256 grid would only add ties.
        if (this.mode === 'qdq') this.bindOutput(out, probs);
        else this.floats.set(out.index, probs);
        return;
      }
    }
  }

  private convolution(
    op: Extract<TfliteOperator, { kind: 'CONV_2D' | 'DEPTHWISE_CONV_2D' }>,
    out: TfliteTensor,
  ): string {
    const x = this.tensor(op.inputs[0]);
    const wt = this.tensor(op.inputs[1]);
    const bias = this.tensor(op.inputs[2]);
    const depthwise = op.kind === 'DEPTHWISE_CONV_2D';
    const [, inH = 0, inW = 0, inC = 0] = x.shape;
    const [o = 0, kh = 0, kw = 0, i = 0] = wt.shape;
    const { strideH, strideW, dilationH, dilationW, padding } = op.options;
    const [top, bottom] = padding === Padding.SAME ? samePads(inH, kh, strideH, dilationH) : [0, 0];
    const [left, right] = padding === Padding.SAME ? samePads(inW, kw, strideW, dilationW) : [0, 0];
    // Depthwise weights are [1, H, W, C*M] in TFLite; as a grouped ONNX conv they are [C*M, 1, H, W],
    // which is the same memory as the [1, C*M, H, W] that the OHWI->OIHW transpose yields.
    const dims = depthwise ? [i, 1, kh, kw] : [o, i, kh, kw];
    const wq = quantOf(wt, this.file);
    const bq = quantOf(bias, this.file);
    const raw = ohwiToOihw(
      constant<Uint8Array>(wt, 'uint8', this.file),
      [o, kh, kw, i],
      new Uint8Array(o * kh * kw * i),
    );
    const biasInt = constant<Int32Array>(bias, 'int32', this.file);

    let weights: string;
    let biasValue: string;
    if (this.mode === 'qdq') {
      const wName = this.g.initializer(`${wt.name}/uint8`, DataType.UINT8, dims, raw);
      weights = this.dequantize(wName, wq.scale, wq.zeroPoint, wt.name);
      const bName = this.g.initializer(`${bias.name}/int32`, DataType.INT32, [biasInt.length], biasInt);
      const bs = this.g.scalarFloat(`${bias.name}/dq_scale`, bq.scale);
      const bz = this.g.initializer(`${bias.name}/dq_zero_point`, DataType.INT32, [], Int32Array.of(0));
      biasValue = this.g.node('DequantizeLinear', [bName, bs, bz], `${bias.name}/dequantized`);
    } else {
      weights = this.g.initializer(
        wt.name,
        DataType.FLOAT,
        dims,
        Float32Array.from(raw, (q) => (q - wq.zeroPoint) * wq.scale),
      );
      biasValue = this.g.initializer(
        bias.name,
        DataType.FLOAT,
        [biasInt.length],
        Float32Array.from(biasInt, (b) => b * bq.scale),
      );
    }
    return this.g.node('Conv', [this.floatOf(x), weights, biasValue], `${out.name}/conv`, {
      kernel_shape: [kh, kw],
      strides: [strideH, strideW],
      dilations: [dilationH, dilationW],
      pads: [top, left, bottom, right],
      group: depthwise ? inC : 1,
    });
  }
}
