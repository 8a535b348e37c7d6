import { ByteBuffer } from 'flatbuffers';
import { ModelError } from '../errors.ts';

/**
 * A reader for the parts of the TFLite flatbuffer (tensorflow/lite/schema/schema.fbs) that a CNN of
 * convolutions needs. Tables are read by vtable slot (4 + 2 * field index in the schema), so no
 * generated code has to be vendored.
 */

export const TensorType = { FLOAT32: 0, INT32: 2, UINT8: 3, INT64: 4, INT8: 9 } as const;

const BuiltinOp = {
  ADD: 0,
  AVERAGE_POOL_2D: 1,
  CONV_2D: 3,
  DEPTHWISE_CONV_2D: 4,
  RESHAPE: 22,
  SOFTMAX: 25,
} as const;

export const Padding = { SAME: 0, VALID: 1 } as const;

interface Quantization {
  scale: Float32Array;
  zeroPoint: number[];
}

export interface TfliteTensor {
  index: number;
  name: string;
  shape: number[];
  type: number;
  /** Constant data (weights, biases), or undefined for activations. */
  data: Uint8Array | undefined;
  quantization: Quantization | undefined;
}

interface ConvOptions {
  padding: number;
  strideW: number;
  strideH: number;
  dilationW: number;
  dilationH: number;
  activation: number;
  depthMultiplier: number;
}

interface PoolOptions {
  padding: number;
  strideW: number;
  strideH: number;
  filterW: number;
  filterH: number;
  activation: number;
}

export type TfliteOperator =
  | { kind: 'CONV_2D' | 'DEPTHWISE_CONV_2D'; inputs: number[]; outputs: number[]; options: ConvOptions }
  | { kind: 'AVERAGE_POOL_2D'; inputs: number[]; outputs: number[]; options: PoolOptions }
  | { kind: 'ADD'; inputs: number[]; outputs: number[]; options: { activation: number } }
  | { kind: 'RESHAPE'; inputs: number[]; outputs: number[] }
  | { kind: 'SOFTMAX'; inputs: number[]; outputs: number[]; options: { beta: number } };

export interface TfliteModel {
  description: string;
  tensors: TfliteTensor[];
  inputs: number[];
  outputs: number[];
  operators: TfliteOperator[];
}

/** A flatbuffer table at `pos`. */
class Table {
  constructor(
    private readonly bb: ByteBuffer,
    readonly pos: number,
  ) {}

  private field(slot: number): number {
    return this.bb.__offset(this.pos, 4 + 2 * slot);
  }

  /** A scalar field, or `fallback` (the schema's default) where the buffer leaves it out. */
  private scalar(slot: number, fallback: number, read: (at: number) => number): number {
    const o = this.field(slot);
    return o ? read(this.pos + o) : fallback;
  }

  int = (slot: number, fallback = 0) => this.scalar(slot, fallback, (at) => this.bb.readInt32(at));
  uint = (slot: number, fallback = 0) => this.scalar(slot, fallback, (at) => this.bb.readUint32(at));
  byte = (slot: number, fallback = 0) => this.scalar(slot, fallback, (at) => this.bb.readInt8(at));
  float = (slot: number, fallback = 0) => this.scalar(slot, fallback, (at) => this.bb.readFloat32(at));

  string(slot: number): string {
    const o = this.field(slot);
    return o ? (this.bb.__string(this.pos + o) as string) : '';
  }

  table(slot: number): Table | undefined {
    const o = this.field(slot);
    return o ? new Table(this.bb, this.bb.__indirect(this.pos + o)) : undefined;
  }

  /** Start and length of a vector field; length 0 when absent. */
  private vector(slot: number): [number, number] {
    const o = this.field(slot);
    if (!o) return [0, 0];
    return [this.bb.__vector(this.pos + o), this.bb.__vector_len(this.pos + o)];
  }

  tables(slot: number): Table[] {
    const [start, len] = this.vector(slot);
    return Array.from({ length: len }, (_, i) => new Table(this.bb, this.bb.__indirect(start + 4 * i)));
  }

  ints(slot: number): number[] {
    const [start, len] = this.vector(slot);
    return Array.from({ length: len }, (_, i) => this.bb.readInt32(start + 4 * i));
  }

  floats(slot: number): Float32Array {
    const [start, len] = this.vector(slot);
    return Float32Array.from({ length: len }, (_, i) => this.bb.readFloat32(start + 4 * i));
  }

  longs(slot: number): number[] {
    const [start, len] = this.vector(slot);
    return Array.from({ length: len }, (_, i) => Number(this.bb.readInt64(start + 8 * i)));
  }

  bytes(slot: number): Uint8Array | undefined {
    const [start, len] = this.vector(slot);
    return len ? this.bb.bytes().subarray(start, start + len) : undefined;
  }
}

const OP_NAMES = new Map<number, TfliteOperator['kind']>(
  Object.entries(BuiltinOp).map(([name, code]) => [code, name as TfliteOperator['kind']]),
);

/** Parses a .tflite file's first subgraph. `file` is only used to name the file in errors. */
export function readTflite(bytes: Uint8Array, file: string): TfliteModel {
  // "TFL3" is the file identifier every TFLite model carries at bytes 4..8.
  if (bytes.length < 8 || String.fromCharCode(...bytes.subarray(4, 8)) !== 'TFL3') {
    throw new ModelError('invalid-model', file, 'not a TFLite model (no "TFL3" file identifier)');
  }
  // A Node Buffer is a view into a shared pool; a plain Uint8Array over the same bytes keeps offsets honest.
  const bb = new ByteBuffer(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const model = new Table(bb, bb.readInt32(bb.position()) + bb.position());
  const opcodes = model.tables(1).map((code) => Math.max(code.byte(0), code.int(3)));
  const buffers = model.tables(4).map((buffer) => buffer.bytes(0));
  const subgraph = model.tables(2)[0];
  if (!subgraph) throw new ModelError('invalid-model', file, 'the model has no subgraph');

  const tensors = subgraph.tables(0).map((t, index): TfliteTensor => {
    const q = t.table(4);
    const scale = q?.floats(2);
    return {
      index,
      name: t.string(3),
      shape: t.ints(0),
      type: t.byte(1),
      data: buffers[t.uint(2)],
      quantization: q && scale && scale.length > 0 ? { scale, zeroPoint: q.longs(3) } : undefined,
    };
  });

  const operators = subgraph.tables(3).map((op, i): TfliteOperator => {
    const code = opcodes[op.uint(0)] ?? -1;
    const kind = OP_NAMES.get(code);
    if (!kind) {
      throw new ModelError(
        'unsupported-op',
        file,
        `operator #${i} has builtin code ${code}, which Sagasu's converter does not support`,
      );
    }
    const inputs = op.ints(1);
    const outputs = op.ints(2);
    const o = op.table(4);
    // Conv2DOptions, DepthwiseConv2DOptions and Pool2DOptions all begin padding, stride_w, stride_h.
    const window = () => ({ padding: o?.byte(0) ?? 0, strideW: o?.int(1) ?? 1, strideH: o?.int(2) ?? 1 });
    switch (kind) {
      case 'CONV_2D':
        return {
          kind,
          inputs,
          outputs,
          options: {
            ...window(),
            activation: o?.byte(3) ?? 0,
            dilationW: o?.int(4, 1) ?? 1,
            dilationH: o?.int(5, 1) ?? 1,
            depthMultiplier: 1,
          },
        };
      case 'DEPTHWISE_CONV_2D':
        return {
          kind,
          inputs,
          outputs,
          options: {
            ...window(),
            depthMultiplier: o?.int(3) ?? 1,
            activation: o?.byte(4) ?? 0,
            dilationW: o?.int(5, 1) ?? 1,
            dilationH: o?.int(6, 1) ?? 1,
          },
        };
      case 'AVERAGE_POOL_2D':
        return {
          kind,
          inputs,
          outputs,
          options: {
            ...window(),
            filterW: o?.int(3) ?? 1,
            filterH: o?.int(4) ?? 1,
            activation: o?.byte(5) ?? 0,
          },
        };
      case 'ADD':
        return { kind, inputs, outputs, options: { activation: o?.byte(0) ?? 0 } };
      case 'RESHAPE':
        return { kind, inputs, outputs };
      case 'SOFTMAX':
        return { kind, inputs, outputs, options: { beta: o?.float(0, 1) ?? 1 } };
      default:
        throw new ModelError('unsupported-op', file, `operator #${i} (${kind as string}) is not supported`);
    }
  });

  return {
    description: model.string(3),
    tensors,
    inputs: subgraph.ints(1),
    outputs: subgraph.ints(2),
    operators,
  };
}
