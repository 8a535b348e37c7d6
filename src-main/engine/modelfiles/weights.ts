import { onnxModelType } from '../cnn/index.ts';
import { ModelError } from '../errors.ts';

/**
 * The image projection's linear map, read out of image_projection.onnx itself, so "why this match" uses the
 * very weights the search ran with. training/export.py writes `features @ W -> ReduceL2 -> Max(eps) -> Div`,
 * W stored float32, or float16 behind a Cast; an int8 export keeps W quantized behind DequantizeLinear (or a
 * Cast and a Mul by its scales), possibly with the per-output scale applied after the MatMul instead. Every
 * such form folds into one float32 W [featureDim, dim]. Any other op between the input and the
 * normalization would make the per-layer split inexact, so it is refused by name instead of approximated.
 */
export interface ProjectionWeights {
  /** Row-major [featureDim, dim]. */
  w: Float32Array;
  featureDim: number;
  dim: number;
  /** The floor of the L2 norm (norm_eps), so a score divides exactly as the graph divides. */
  eps: number;
}

const DT = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, FLOAT16: 10, DOUBLE: 11 } as const;

interface TensorProto {
  name: string;
  dims: number[];
  dataType: number;
  rawData?: Uint8Array;
  floatData?: number[];
  int32Data?: number[];
  int64Data?: Array<number | { toNumber(): number }>;
  doubleData?: number[];
}
interface AttributeProto {
  name: string;
  type?: number;
  i?: number | { toNumber(): number };
  f?: number;
  t?: TensorProto;
}
interface NodeProto {
  opType: string;
  input: string[];
  output: string[];
  name?: string;
  attribute?: AttributeProto[];
}
interface GraphProto {
  node: NodeProto[];
  initializer: TensorProto[];
  input: Array<{ name: string }>;
  output: Array<{ name: string }>;
}

interface Value {
  data: Float32Array;
  dims: number[];
}

function num(v: number | { toNumber(): number } | undefined): number {
  if (v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

/** IEEE half -> float. Node 20 has no Float16Array. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function tensorValues(t: TensorProto, file: string): Value {
  const dims = (t.dims ?? []).map(num);
  const count = dims.reduce((a, b) => a * b, 1);
  const out = new Float32Array(count);
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : undefined;
  const view = raw ? new DataView(raw.buffer, raw.byteOffset, raw.byteLength) : undefined;
  switch (t.dataType) {
    case DT.FLOAT:
      for (let k = 0; k < count; k++) out[k] = view ? view.getFloat32(k * 4, true) : (t.floatData?.[k] ?? 0);
      break;
    case DT.DOUBLE:
      for (let k = 0; k < count; k++) out[k] = view ? view.getFloat64(k * 8, true) : (t.doubleData?.[k] ?? 0);
      break;
    case DT.FLOAT16:
      for (let k = 0; k < count; k++)
        out[k] = halfToFloat(view ? view.getUint16(k * 2, true) : (t.int32Data?.[k] ?? 0));
      break;
    case DT.INT8:
      for (let k = 0; k < count; k++) out[k] = view ? view.getInt8(k) : (t.int32Data?.[k] ?? 0);
      break;
    case DT.UINT8:
      for (let k = 0; k < count; k++) out[k] = view ? view.getUint8(k) : (t.int32Data?.[k] ?? 0);
      break;
    case DT.INT32:
      for (let k = 0; k < count; k++) out[k] = view ? view.getInt32(k * 4, true) : (t.int32Data?.[k] ?? 0);
      break;
    case DT.INT64:
      for (let k = 0; k < count; k++)
        out[k] = view ? Number(view.getBigInt64(k * 8, true)) : num(t.int64Data?.[k]);
      break;
    default:
      throw new ModelError(
        'unsupported-op',
        file,
        `initializer ${t.name} has ONNX data type ${t.dataType}, which the layer explainer does not read`,
      );
  }
  if (raw && raw.length < count * bytesPer(t.dataType))
    throw new ModelError('invalid-model', file, `initializer ${t.name} is shorter than its dims`);
  return { data: out, dims };
}

function bytesPer(dataType: number): number {
  if (dataType === DT.DOUBLE || dataType === DT.INT64) return 8;
  if (dataType === DT.FLOAT || dataType === DT.INT32) return 4;
  if (dataType === DT.FLOAT16) return 2;
  return 1;
}

/** a op b with b a scalar, or b broadcast along the last axis of a (per-output), or along the first. */
function broadcast(a: Value, b: Value, op: (x: number, y: number) => number, what: string, file: string) {
  const out = new Float32Array(a.data.length);
  const last = a.dims.at(-1) ?? 1;
  const n = b.data.length;
  const bLast = b.dims.at(-1) ?? 1;
  if (n === 1) for (let k = 0; k < out.length; k++) out[k] = op(a.data[k] as number, b.data[0] as number);
  else if (n === last && bLast === last)
    for (let k = 0; k < out.length; k++) out[k] = op(a.data[k] as number, b.data[k % last] as number);
  else if (n === a.data.length)
    for (let k = 0; k < out.length; k++) out[k] = op(a.data[k] as number, b.data[k] as number);
  else if (a.dims.length === 2 && n === a.dims[0])
    for (let k = 0; k < out.length; k++)
      out[k] = op(a.data[k] as number, b.data[Math.floor(k / last)] as number);
  else
    throw new ModelError(
      'unsupported-op',
      file,
      `${what}: cannot broadcast [${b.dims.join(', ')}] onto [${a.dims.join(', ')}]`,
    );
  return { data: out, dims: a.dims };
}

/** Reads the projection's W (folded to float32) and the norm floor from the model file's bytes. */
export function readProjectionWeights(bytes: Uint8Array, file: string): ProjectionWeights {
  let graph: GraphProto;
  try {
    const type = onnxModelType();
    graph = (type.decode(bytes) as unknown as { graph: GraphProto }).graph;
  } catch (cause) {
    throw new ModelError('invalid-model', file, `not an ONNX model: ${(cause as Error).message}`, { cause });
  }
  if (!graph) throw new ModelError('invalid-model', file, 'has no graph');
  const inits = new Map(graph.initializer.map((t) => [t.name, t]));
  const producer = new Map<string, NodeProto>();
  for (const n of graph.node) for (const o of n.output) producer.set(o, n);
  const consumers = (name: string) => graph.node.filter((n) => n.input.includes(name));
  const cache = new Map<string, Value>();

  const attr = (n: NodeProto, name: string) => n.attribute?.find((a) => a.name === name);
  const refuse = (n: NodeProto, why: string): never => {
    throw new ModelError('unsupported-op', file, `node ${n.name || n.opType} (${n.opType}): ${why}`);
  };

  // Constant folding of the weight's producers: the handful of ops an fp16 or int8 export puts there.
  const constant = (name: string): Value => {
    const hit = cache.get(name);
    if (hit) return hit;
    let value: Value;
    const t = inits.get(name);
    if (t) value = tensorValues(t, file);
    else {
      const n = producer.get(name);
      if (!n) throw new ModelError('invalid-model', file, `tensor ${name} has no producer`);
      const inputs = n.input.filter((i) => i !== '');
      switch (n.opType) {
        case 'Constant': {
          const t2 = attr(n, 'value')?.t;
          if (!t2) return refuse(n, 'only tensor constants are read');
          value = tensorValues(t2, file);
          break;
        }
        case 'Cast':
        case 'Identity':
          value = constant(inputs[0] as string);
          break;
        case 'DequantizeLinear': {
          const x = constant(inputs[0] as string);
          const scale = constant(inputs[1] as string);
          const zero = inputs[2] ? constant(inputs[2]) : { data: Float32Array.of(0), dims: [] };
          const axis = num(attr(n, 'axis')?.i ?? 1);
          const rank = x.dims.length;
          const along = axis < 0 ? axis + rank : axis;
          const perAxis = (v: Value) => {
            if (v.data.length === 1) return (_k: number) => v.data[0] as number;
            const stride = x.dims.slice(along + 1).reduce((a, b) => a * b, 1);
            const size = x.dims[along] ?? 1;
            if (v.data.length !== size) return refuse(n, 'scale length differs from its axis');
            return (k: number) => v.data[Math.floor(k / stride) % size] as number;
          };
          const s = perAxis(scale);
          const z = perAxis(zero);
          const out = new Float32Array(x.data.length);
          for (let k = 0; k < out.length; k++) out[k] = ((x.data[k] as number) - z(k)) * s(k);
          value = { data: out, dims: x.dims };
          break;
        }
        case 'Mul':
        case 'Div': {
          const a = constant(inputs[0] as string);
          const b = constant(inputs[1] as string);
          const [big, small] = a.data.length >= b.data.length ? [a, b] : [b, a];
          if (n.opType === 'Div' && big !== a) return refuse(n, 'divides by the weight');
          value = broadcast(
            big,
            small,
            n.opType === 'Mul' ? (x, y) => x * y : (x, y) => x / y,
            n.opType,
            file,
          );
          break;
        }
        default:
          return refuse(n, 'not an op the layer explainer can fold into the projection weight');
      }
    }
    cache.set(name, value);
    return value;
  };

  const input = graph.input.find((i) => !inits.has(i.name))?.name ?? 'features';
  const uses = consumers(input);
  const matmul = uses[0];
  if (uses.length !== 1 || !matmul || (matmul.opType !== 'MatMul' && matmul.opType !== 'Gemm'))
    throw new ModelError(
      'unsupported-op',
      file,
      `expected the input ${input} to feed one MatMul (features @ W, no bias); it feeds ${uses.map((u) => u.opType).join(', ') || 'nothing'}`,
    );
  if (matmul.input[0] !== input) refuse(matmul, 'the features must be the left operand');
  if (matmul.opType === 'Gemm') {
    if (matmul.input[2]) refuse(matmul, 'has a bias, so a score does not split exactly by layer');
    if (num(attr(matmul, 'transA')?.i) !== 0) refuse(matmul, 'transposes the features');
  }
  let weight = constant(matmul.input[1] as string);
  if (weight.dims.length !== 2) refuse(matmul, `weight of rank ${weight.dims.length}`);
  let [featureDim, dim] = weight.dims as [number, number];
  if (matmul.opType === 'Gemm') {
    const alpha = attr(matmul, 'alpha')?.f ?? 1;
    if (num(attr(matmul, 'transB')?.i) === 1) {
      const t = new Float32Array(weight.data.length);
      for (let r = 0; r < dim; r++)
        for (let c = 0; c < featureDim; c++) t[c * dim + r] = weight.data[r * featureDim + c] as number;
      [featureDim, dim] = [dim, featureDim];
      weight = { data: t, dims: [featureDim, dim] };
    }
    if (alpha !== 1)
      weight = broadcast(weight, { data: Float32Array.of(alpha), dims: [] }, (x, y) => x * y, 'alpha', file);
  }

  // After the MatMul: per-output scales (int8 exports) fold into W's columns, up to the L2 normalization.
  let current = matmul.output[0] as string;
  for (;;) {
    const next = consumers(current);
    const reduce = next.find((n) => n.opType === 'ReduceL2');
    if (reduce) {
      const div = next.find((n) => n.opType === 'Div');
      if (!div || next.length !== 2) refuse(reduce, 'expected the graph to end in x / max(‖x‖, eps)');
      const eps = epsilonOf(graph, reduce, constant);
      const w = weight.data;
      return { w, featureDim, dim, eps };
    }
    const n = next[0];
    if (next.length !== 1 || !n)
      throw new ModelError('unsupported-op', file, `${current} feeds ${next.length} nodes, expected one`);
    if (n.opType === 'Identity' || (n.opType === 'Cast' && num(attr(n, 'to')?.i) === DT.FLOAT)) {
      current = n.output[0] as string;
      continue;
    }
    if (n.opType === 'Mul') {
      const other = n.input[0] === current ? n.input[1] : n.input[0];
      const scale = constant(other as string);
      if (scale.data.length !== 1 && scale.data.length !== dim) refuse(n, 'scales other than per output');
      weight = broadcast(weight, scale, (x, y) => x * y, 'Mul', file);
      current = n.output[0] as string;
      continue;
    }
    refuse(
      n,
      'sits between the projection and its normalization, so a score would not split exactly by layer',
    );
  }
}

function epsilonOf(graph: GraphProto, reduce: NodeProto, constant: (name: string) => Value): number {
  const norm = reduce.output[0] as string;
  const floor = graph.node.find((n) => n.opType === 'Max' && n.input.includes(norm));
  if (!floor) return 0;
  const other = floor.input.find((i) => i !== norm);
  return other ? (constant(other).data[0] ?? 0) : 0;
}
