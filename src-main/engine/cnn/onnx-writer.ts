import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/** ONNX TensorProto.DataType values used by the converter. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7 } as const;
type DataTypeCode = (typeof DataType)[keyof typeof DataType];

type AttributeValue = number | number[] | { float: number };

interface Attribute {
  name: string;
  type: number;
  i?: number;
  f?: number;
  ints?: number[];
}

const AttrType = { FLOAT: 1, INT: 2, INTS: 7 } as const;

/** One symbolic or fixed dimension of a graph input/output. */
type Dim = number | string;

/**
 * Builds an ONNX graph node by node and serializes it with the onnx.proto schema, so the converter
 * deals in ops and tensors and never in protobuf details.
 */
export class OnnxGraphBuilder {
  private readonly nodes: object[] = [];
  private readonly initializers: object[] = [];
  private readonly inputs: object[] = [];
  private readonly outputs: object[] = [];
  private readonly names = new Set<string>();
  private counter = 0;

  /** A fresh tensor name derived from `base`. */
  fresh(base: string): string {
    let name = base;
    while (this.names.has(name)) name = `${base}__${++this.counter}`;
    this.names.add(name);
    return name;
  }

  initializer(base: string, dataType: DataTypeCode, dims: number[], raw: ArrayBufferView): string {
    const name = this.fresh(base);
    const rawData = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
    this.initializers.push({ name, dataType, dims, rawData });
    return name;
  }

  scalarFloat(base: string, value: number): string {
    return this.initializer(base, DataType.FLOAT, [], Float32Array.of(value));
  }

  node(
    opType: string,
    inputs: string[],
    outputBase: string,
    attributes: Record<string, AttributeValue> = {},
  ): string {
    const output = this.fresh(outputBase);
    const attribute: Attribute[] = Object.entries(attributes).map(([name, value]) => {
      if (Array.isArray(value)) return { name, type: AttrType.INTS, ints: value };
      if (typeof value === 'number') return { name, type: AttrType.INT, i: value };
      return { name, type: AttrType.FLOAT, f: value.float };
    });
    this.nodes.push({ opType, input: inputs, output: [output], name: output, attribute });
    return output;
  }

  input(name: string, elemType: DataTypeCode, dims: Dim[]): string {
    this.names.add(name);
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  /** Exposes `tensor` as a graph output called `name` (an Identity keeps graph outputs uniquely named). */
  output(name: string, tensor: string, elemType: DataTypeCode, dims: Dim[]): void {
    this.names.add(name);
    this.nodes.push({ opType: 'Identity', input: [tensor], output: [name], name, attribute: [] });
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  encode(meta: {
    graphName: string;
    opset: number;
    producerVersion: string;
    docString: string;
    metadata: Record<string, string>;
  }): Uint8Array {
    const ModelProto = onnxRoot().lookupType('onnx.ModelProto');
    const model = {
      // IR version 8 is the one that goes with opset 17.
      irVersion: 8,
      producerName: 'sagasu',
      producerVersion: meta.producerVersion,
      docString: meta.docString,
      opsetImport: [{ domain: '', version: meta.opset }],
      metadataProps: Object.entries(meta.metadata).map(([key, value]) => ({ key, value })),
      graph: {
        name: meta.graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    };
    const problem = ModelProto.verify(model);
    if (problem) throw new Error(`internal error building ONNX: ${problem}`);
    return ModelProto.encode(ModelProto.fromObject(model)).finish();
  }
}

function valueInfo(name: string, elemType: number, dims: Dim[]): object {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

let root: protobuf.Root | undefined;
function onnxRoot(): protobuf.Root {
  root ??= protobuf.loadSync(fileURLToPath(new URL('./onnx.proto', import.meta.url)));
  return root;
}

/** The onnx.ModelProto message type of the project's onnx.proto (the writer's schema; readers share it). */
export function onnxModelType(): protobuf.Type {
  return onnxRoot().lookupType('onnx.ModelProto');
}
