import { basename } from 'node:path';
import { ModelError } from '../errors.ts';
import {
  type ConvertedCnn,
  INPUT_IMAGE,
  type LayerInfo,
  OUTPUT_FNE,
  OUTPUT_ONE_LAYER,
  OUTPUT_PROBS,
  samePads,
} from './converter.ts';
import { DataType, OnnxGraphBuilder } from './onnx-writer.ts';
import type { KerasLayer, KerasWeight, TfjsLayersModel } from './tfjs.ts';

/** Keras' "caffe" mode (ResNet50, VGG): RGB to BGR, the ImageNet mean subtracted per channel, no scaling. */
const CAFFE_MEAN_BGR = [103.939, 116.779, 123.68];

interface KerasConvertOptions {
  /** The preprocessing the network was trained with; the graph applies it to uint8 RGB pixels itself. */
  preprocessing: 'caffe';
  /** false builds the plain classifier (only `probs`), for measuring what the Full-Network outputs cost. */
  fullNetwork?: boolean;
  /** Pool the projection shortcut convs too (default true; their columns are marked kind 'shortcut'). */
  shortcuts?: boolean;
  producerVersion?: string;
  graphName?: string;
  /** What the docstring names as the source (default model.json's file name): never a machine's own path. */
  source?: string;
}

/** An activation in NCHW float; `pads` is a ZeroPadding2D not yet applied, left for the conv that reads it. */
interface Value {
  tensor: string;
  channels: number;
  height: number;
  width: number;
  flat: boolean;
  pads?: [number, number, number, number];
}

type Pads = [number, number, number, number];

/**
 * Converts a Keras functional model (as TensorFlow.js stores it) into an ONNX graph with the Full-Network outputs:
 * uint8 NHWC RGB in, `probs`, `fne_raw` (the spatial mean of every conv layer's activation, in the file's conv
 * order) and `one_layer` (the pooled input of the global average pool). BatchNorm is folded into the conv before it.
 */
export function convertKerasToOnnx(model: TfjsLayersModel, options: KerasConvertOptions): ConvertedCnn {
  return new KerasConverter(model, options).convert();
}

class KerasConverter {
  private readonly g = new OnnxGraphBuilder();
  private readonly byName = new Map<string, KerasLayer>();
  private readonly consumers = new Map<string, KerasLayer[]>();
  private readonly values = new Map<string, Value>();
  private readonly pooledOf = new Map<string, string>();
  private readonly file: string;

  constructor(
    private readonly model: TfjsLayersModel,
    private readonly options: KerasConvertOptions,
  ) {
    this.file = model.file;
    for (const layer of model.layers) {
      this.byName.set(layer.name, layer);
      for (const input of layer.inputs) {
        const list = this.consumers.get(input) ?? [];
        list.push(layer);
        this.consumers.set(input, list);
      }
    }
  }

  private fail(layer: KerasLayer, why: string): never {
    throw new ModelError('unsupported-op', this.file, `layer ${layer.name} (${layer.className}): ${why}`);
  }

  private consumersOf(name: string): KerasLayer[] {
    return this.consumers.get(name) ?? [];
  }

  private input(layer: KerasLayer, i = 0): Value {
    const name = layer.inputs[i];
    const value = name === undefined ? undefined : this.values.get(name);
    if (!value) this.fail(layer, `input ${i} (${name ?? 'none'}) is not computed before it`);
    return value;
  }

  private weight(layer: KerasLayer, param: string, shape?: number[]): KerasWeight {
    const w = this.model.weights.get(`${layer.name}/${param}`);
    if (!w) this.fail(layer, `weight ${layer.name}/${param} is not in the weights manifest`);
    if (shape && (w.shape.length !== shape.length || w.shape.some((d, i) => d !== shape[i])))
      this.fail(layer, `weight ${param} has shape [${w.shape}], expected [${shape}]`);
    return w;
  }

  private pair(layer: KerasLayer, key: string): [number, number] {
    const v = layer.config[key];
    if (typeof v === 'number') return [v, v];
    if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number'))
      return v as [number, number];
    this.fail(layer, `${key} is ${JSON.stringify(v)}, expected a number or two`);
  }

  private channelsLast(layer: KerasLayer): void {
    const format = layer.config.data_format;
    if (format !== undefined && format !== 'channels_last') this.fail(layer, `data_format ${format}`);
  }

  /** The spatial mean of a value, computed once however many outputs read it. */
  private gap(value: Value): string {
    let pooled = this.pooledOf.get(value.tensor);
    if (!pooled) {
      // GlobalAveragePool rather than ReduceMean: onnxruntime runs it inside its blocked (NCHWc) conv layout.
      pooled = this.g.node('GlobalAveragePool', [value.tensor], `${value.tensor}/pooled`);
      this.pooledOf.set(value.tensor, pooled);
    }
    return pooled;
  }

  convert(): ConvertedCnn {
    const { model, g } = this;
    if (model.inputs.length !== 1 || model.outputs.length !== 1)
      throw new ModelError('unsupported-op', this.file, 'expected one input layer and one output layer');
    let inputSize = 0;
    for (const layer of model.layers) {
      if (this.values.has(layer.name)) continue; // a BatchNorm already folded into its conv
      if (layer.className === 'InputLayer') inputSize = this.inputLayer(layer);
      else this.values.set(layer.name, this.emit(layer));
    }
    const outputLayer = this.byName.get(model.outputs[0] as string);
    const probs = outputLayer && this.values.get(outputLayer.name);
    if (!outputLayer || !probs?.flat || !this.endsInSoftmax(outputLayer))
      throw new ModelError('unsupported-op', this.file, 'the output layer is not a softmax over classes');

    const fullNetwork = this.options.fullNetwork ?? true;
    const pooled = this.poolingPlan();
    const gapLayer = model.layers.find((l) => l.className === 'GlobalAveragePooling2D');
    const oneLayer = pooled.find((p) => p.info.pooled === gapLayer?.inputs[0] && p.info.kind !== 'shortcut');
    if (!oneLayer)
      throw new ModelError('invalid-model', this.file, 'no pooled conv layer feeds the global average pool');
    const fneDim = pooled.reduce((sum, p) => sum + p.info.channels, 0);
    if (fullNetwork) {
      const concat = g.node(
        'Concat',
        pooled.map((p) => this.gap(p.value)),
        'fne_concat',
        { axis: 1 },
      );
      g.output(OUTPUT_FNE, g.node('Flatten', [concat], 'fne_flat', { axis: 1 }), DataType.FLOAT, [
        'batch',
        fneDim,
      ]);
      const one = g.node('Flatten', [this.gap(oneLayer.value)], 'one_layer_flat', { axis: 1 });
      g.output(OUTPUT_ONE_LAYER, one, DataType.FLOAT, ['batch', oneLayer.info.channels]);
    }
    g.output(OUTPUT_PROBS, probs.tensor, DataType.FLOAT, ['batch', probs.channels]);
    const graphName = this.options.graphName ?? 'keras';
    const onnx = g.encode({
      graphName: `${graphName} (float)`,
      opset: 17,
      producerVersion: this.options.producerVersion ?? '0',
      docString: `Converted by Sagasu from ${this.options.source ?? basename(this.file)} (${model.generatedBy}), ${this.options.preprocessing} preprocessing inside the graph${fullNetwork ? ', with Full-Network outputs' : ''}.`,
      metadata: { mode: 'float', fne_dim: String(fneDim), one_layer: oneLayer.info.name },
    });
    return {
      onnx,
      layers: pooled.map((p) => p.info),
      fneDim,
      oneLayer: oneLayer.info,
      inputSize,
      classes: probs.channels,
    };
  }

  private endsInSoftmax(layer: KerasLayer): boolean {
    return layer.config.activation === 'softmax';
  }

  /**
   * Which tensor each conv layer contributes, in the file's conv order. After BN (folded) a conv feeds either its
   * ReLU (pooled after it), or a residual ADD: the residual branch's last conv is pooled as the block output (the
   * ReLU after the ADD, what the next block reads), and a projection shortcut (a conv that reads the block input
   * the residual branch also reads) as its own BN output, or not at all with `shortcuts: false`.
   */
  private poolingPlan(): { info: LayerInfo; value: Value }[] {
    const plan: { info: LayerInfo; value: Value }[] = [];
    for (const conv of this.model.layers.filter((l) => l.className === 'Conv2D')) {
      const bn = this.soleBatchNorm(conv);
      const out = bn ?? conv;
      const next = this.consumersOf(out.name);
      const only = next.length === 1 ? next[0] : undefined;
      let kind: LayerInfo['kind'] = 'conv';
      let pooledLayer = out;
      if (only?.className === 'Activation' && only.config.activation === 'relu') pooledLayer = only;
      else if (only?.className === 'Add') {
        const after = this.consumersOf(only.name);
        const relu = after.length === 1 && after[0]?.config.activation === 'relu' ? after[0] : undefined;
        const readsBlockInput = this.consumersOf(conv.inputs[0] as string).length > 1;
        if (readsBlockInput) kind = 'shortcut';
        else if (relu) {
          kind = 'block';
          pooledLayer = relu;
        }
      }
      if (kind === 'shortcut' && this.options.shortcuts === false) continue;
      const value = this.values.get(pooledLayer.name) as Value;
      plan.push({
        info: {
          index: plan.length,
          name: conv.name,
          kind,
          pooled: pooledLayer.name,
          offset: plan.reduce((sum, p) => sum + p.info.channels, 0),
          channels: value.channels,
          height: value.height,
          width: value.width,
          scale: 0,
          zeroPoint: 0,
        },
        value,
      });
    }
    return plan;
  }

  private soleBatchNorm(conv: KerasLayer): KerasLayer | undefined {
    const next = this.consumersOf(conv.name);
    return next.length === 1 && next[0]?.className === 'BatchNormalization' ? next[0] : undefined;
  }

  private inputLayer(layer: KerasLayer): number {
    const shape = layer.config.batch_input_shape ?? layer.config.batch_shape;
    const [, h, w, c] = Array.isArray(shape) ? (shape as unknown[]) : [];
    if (typeof h !== 'number' || h !== w || c !== 3)
      this.fail(layer, `input shape ${JSON.stringify(shape)}, expected [null, S, S, 3] (a square RGB image)`);
    const g = this.g;
    g.input(INPUT_IMAGE, DataType.UINT8, ['batch', h, h, 3]);
    const nchw = g.node('Transpose', [INPUT_IMAGE], 'image/nchw', { perm: [0, 3, 1, 2] });
    const float = g.node('Cast', [nchw], 'image/float', { to: DataType.FLOAT });
    const bgr = g.node(
      'Gather',
      [float, g.initializer('image/bgr_order', DataType.INT64, [3], BigInt64Array.of(2n, 1n, 0n))],
      'image/bgr',
      { axis: 1 },
    );
    const mean = g.initializer(
      'image/mean_bgr',
      DataType.FLOAT,
      [1, 3, 1, 1],
      Float32Array.from(CAFFE_MEAN_BGR),
    );
    const centred = g.node('Sub', [bgr, mean], 'image/centred');
    this.values.set(layer.name, { tensor: centred, channels: 3, height: h, width: h, flat: false });
    return h;
  }

  private emit(layer: KerasLayer): Value {
    switch (layer.className) {
      case 'ZeroPadding2D':
        return this.zeroPadding(layer);
      case 'Conv2D':
        return this.conv(layer);
      case 'Activation':
        return this.activation(layer, this.input(layer), layer.config.activation);
      case 'Add': {
        const inputs = layer.inputs.map((_, i) => this.input(layer, i));
        const first = inputs[0] as Value;
        if (inputs.some((v) => v.channels !== first.channels || v.height !== first.height || v.flat))
          this.fail(layer, 'its inputs differ in shape');
        let sum = first.tensor;
        for (const v of inputs.slice(1)) sum = this.g.node('Add', [sum, v.tensor], `${layer.name}/add`);
        return { ...first, tensor: sum };
      }
      case 'MaxPooling2D':
        return this.maxPool(layer);
      case 'GlobalAveragePooling2D': {
        const x = this.input(layer);
        const flat = this.g.node('Flatten', [this.gap(x)], layer.name, { axis: 1 });
        return { tensor: flat, channels: x.channels, height: 1, width: 1, flat: true };
      }
      case 'Dense':
        return this.dense(layer);
      case 'BatchNormalization':
        return this.fail(layer, 'a BatchNormalization is supported only directly after a Conv2D');
      default:
        return this.fail(layer, 'this layer type is not supported');
    }
  }

  private zeroPadding(layer: KerasLayer): Value {
    this.channelsLast(layer);
    const x = this.input(layer);
    const p = layer.config.padding;
    let pads: Pads;
    if (typeof p === 'number') pads = [p, p, p, p];
    else if (Array.isArray(p) && p.length === 2 && p.every((v) => typeof v === 'number')) {
      const [h, w] = p as [number, number];
      pads = [h, w, h, w];
    } else if (Array.isArray(p) && p.every((v) => Array.isArray(v) && v.length === 2)) {
      const [[top, bottom], [left, right]] = p as [[number, number], [number, number]];
      pads = [top, left, bottom, right];
    } else return this.fail(layer, `padding ${JSON.stringify(p)}`);
    const [top, left, bottom, right] = pads;
    const size = { height: x.height + top + bottom, width: x.width + left + right };
    // A conv pads with zeros itself; anything else (the max pool) gets an explicit Pad, which is exact for any input.
    if (this.consumersOf(layer.name).every((c) => c.className === 'Conv2D')) return { ...x, ...size, pads };
    const padsTensor = this.g.initializer(
      `${layer.name}/pads`,
      DataType.INT64,
      [8],
      BigInt64Array.from([0, 0, top, left, 0, 0, bottom, right], BigInt),
    );
    return { ...x, ...size, tensor: this.g.node('Pad', [x.tensor, padsTensor], layer.name) };
  }

  private conv(layer: KerasLayer): Value {
    this.channelsLast(layer);
    const x = this.input(layer);
    const c = layer.config;
    if ((c.groups ?? 1) !== 1) this.fail(layer, `groups ${c.groups}`);
    const [kh, kw] = this.pair(layer, 'kernel_size');
    const [sh, sw] = this.pair(layer, 'strides');
    const [dh, dw] = this.pair(layer, 'dilation_rate');
    const out = c.filters as number;
    const kernel = this.weight(layer, 'kernel', [kh, kw, x.channels, out]);
    // The graph's own pads are those of a ZeroPadding2D before the conv; "same" adds TensorFlow's.
    const [pt, pl, pb, pr] = x.pads ?? [0, 0, 0, 0];
    const baseH = x.height - pt - pb;
    const baseW = x.width - pl - pr;
    let pads: Pads = [pt, pl, pb, pr];
    if (c.padding === 'same') {
      const [t, b] = samePads(x.height, kh, sh, dh);
      const [l, r] = samePads(x.width, kw, sw, dw);
      pads = [pt + t, pl + l, pb + b, pr + r];
    } else if (c.padding !== 'valid') this.fail(layer, `padding ${c.padding}`);
    const height = Math.floor((baseH + pads[0] + pads[2] - dh * (kh - 1) - 1) / sh) + 1;
    const width = Math.floor((baseW + pads[1] + pads[3] - dw * (kw - 1) - 1) / sw) + 1;

    // [kh, kw, in, out] (Keras) to [out, in, kh, kw] (ONNX), in float64 until the BatchNorm is folded in.
    const inC = x.channels;
    const w = new Float64Array(out * inC * kh * kw);
    const src = kernel.values;
    for (let y = 0; y < kh; y++)
      for (let xx = 0; xx < kw; xx++)
        for (let i = 0; i < inC; i++)
          for (let o = 0; o < out; o++)
            w[((o * inC + i) * kh + y) * kw + xx] = src[((y * kw + xx) * inC + i) * out + o] as number;
    const bias = new Float64Array(out);
    if (c.use_bias !== false) bias.set(this.weight(layer, 'bias', [out]).values);

    const bn = this.soleBatchNorm(layer);
    if (bn) this.foldBatchNorm(bn, w, bias, out);
    const name = bn ? `${layer.name}+${bn.name}` : layer.name;
    const tensor = this.g.node(
      'Conv',
      [
        x.tensor,
        this.g.initializer(`${layer.name}/kernel`, DataType.FLOAT, [out, inC, kh, kw], Float32Array.from(w)),
        this.g.initializer(`${layer.name}/bias`, DataType.FLOAT, [out], Float32Array.from(bias)),
      ],
      name,
      { kernel_shape: [kh, kw], strides: [sh, sw], dilations: [dh, dw], pads, group: 1 },
    );
    const value = this.activation(layer, { tensor, channels: out, height, width, flat: false }, c.activation);
    if (bn) this.values.set(bn.name, value);
    return value;
  }

  /** y = gamma (conv(x) + b - mean) / sqrt(var + eps) + beta, folded into the conv's weights and bias. */
  private foldBatchNorm(bn: KerasLayer, w: Float64Array, bias: Float64Array, channels: number): void {
    const c = bn.config;
    const axis = Array.isArray(c.axis) ? c.axis[0] : c.axis;
    if (axis !== 3 && axis !== -1) this.fail(bn, `axis ${JSON.stringify(c.axis)}, expected the channel axis`);
    const eps = typeof c.epsilon === 'number' ? c.epsilon : 1e-3;
    const gamma = c.scale === false ? undefined : this.weight(bn, 'gamma', [channels]).values;
    const beta = c.center === false ? undefined : this.weight(bn, 'beta', [channels]).values;
    const mean = this.weight(bn, 'moving_mean', [channels]).values;
    const variance = this.weight(bn, 'moving_variance', [channels]).values;
    const per = w.length / channels;
    for (let o = 0; o < channels; o++) {
      const k = (gamma ? (gamma[o] as number) : 1) / Math.sqrt((variance[o] as number) + eps);
      for (let j = o * per; j < (o + 1) * per; j++) w[j] = (w[j] as number) * k;
      bias[o] = ((bias[o] as number) - (mean[o] as number)) * k + (beta ? (beta[o] as number) : 0);
    }
  }

  private activation(layer: KerasLayer, x: Value, activation: unknown): Value {
    if (activation === undefined || activation === 'linear') return x;
    if (activation === 'relu') return { ...x, tensor: this.g.node('Relu', [x.tensor], `${layer.name}/relu`) };
    if (activation === 'softmax' && x.flat)
      return { ...x, tensor: this.g.node('Softmax', [x.tensor], `${layer.name}/softmax`, { axis: -1 }) };
    return this.fail(layer, `activation ${JSON.stringify(activation)}`);
  }

  private maxPool(layer: KerasLayer): Value {
    this.channelsLast(layer);
    const x = this.input(layer);
    const [kh, kw] = this.pair(layer, 'pool_size');
    const [sh, sw] = layer.config.strides == null ? [kh, kw] : this.pair(layer, 'strides');
    let pads: Pads = [0, 0, 0, 0];
    if (layer.config.padding === 'same') {
      const [t, b] = samePads(x.height, kh, sh, 1);
      const [l, r] = samePads(x.width, kw, sw, 1);
      pads = [t, l, b, r];
    } else if (layer.config.padding !== 'valid') this.fail(layer, `padding ${layer.config.padding}`);
    const tensor = this.g.node('MaxPool', [x.tensor], layer.name, {
      kernel_shape: [kh, kw],
      strides: [sh, sw],
      pads,
    });
    return {
      tensor,
      channels: x.channels,
      height: Math.floor((x.height + pads[0] + pads[2] - kh) / sh) + 1,
      width: Math.floor((x.width + pads[1] + pads[3] - kw) / sw) + 1,
      flat: false,
    };
  }

  private dense(layer: KerasLayer): Value {
    const x = this.input(layer);
    if (!x.flat) this.fail(layer, 'its input is not a flat vector');
    const units = layer.config.units as number;
    const kernel = this.weight(layer, 'kernel', [x.channels, units]);
    const bias =
      layer.config.use_bias === false ? new Float32Array(units) : this.weight(layer, 'bias', [units]).values;
    const g = this.g;
    const tensor = g.node(
      'Gemm',
      [
        x.tensor,
        g.initializer(`${layer.name}/kernel`, DataType.FLOAT, [x.channels, units], kernel.values),
        g.initializer(`${layer.name}/bias`, DataType.FLOAT, [units], bias),
      ],
      layer.name,
    );
    return this.activation(
      layer,
      { tensor, channels: units, height: 1, width: 1, flat: true },
      layer.config.activation,
    );
  }
}
