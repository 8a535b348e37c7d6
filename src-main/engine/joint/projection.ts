import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { backboneMode, type OnnxOptions, openSession, type ProviderName, verifiedCnn } from '../cnn/index.ts';
import { ArgumentError, ModelError } from '../errors.ts';
import {
  type FeatureKind,
  floatOutput,
  IMAGE_PROJECTION_FILE,
  type JointManifest,
  jointBackbone,
  MANIFEST_FILE,
  readJointManifest,
  readVerified,
  requireIo,
} from '../modelfiles/index.ts';

/** One image as the engine's image path gives it (FneExtractor's ImageFeatures fits). */
export interface ImageInput {
  /** The ternary Full-Network Embedding, one int8 per column of the CNN's layer map. */
  fne?: Int8Array | undefined;
  /** The standardized one-layer vector (Conv_1, pooled). */
  oneLayer?: Float32Array | undefined;
}

/** Where a layer's columns sit in the full ternary FNE. */
export interface LayerColumns {
  name: string;
  offset: number;
  channels: number;
}

export interface ImageProjectionOptions extends OnnxOptions {
  /**
   * The layer map the ternary FNE columns follow (name, offset, channels). Default: the built CNN's
   * of the model's backbone (`verifiedCnn(backboneMode(b), , b).layers`); the prepared data set's layers.json describes the same columns.
   */
  layers?: readonly LayerColumns[];
  /** Images per ONNX run (default 128); only memory depends on it. */
  batchSize?: number;
}

interface Span {
  from: number;
  to: number;
}

/**
 * Images -> unit vectors in a joint model's space: the columns of the features the model was trained on,
 * then the exported projection (image_projection.onnx) in onnxruntime.
 */
export class ImageProjection {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly manifest: JointManifest,
    readonly provider: ProviderName,
    /** Column spans of the FNE to concatenate (ternary kinds); adjacent layers merged into one span. */
    private readonly spans: readonly Span[],
    /** Length the FNE vector must have (ternary kinds). */
    private readonly fneDim: number,
    private readonly batchSize: number,
    readonly file: string,
  ) {}

  static async open(modelDir: string, options: ImageProjectionOptions = {}): Promise<ImageProjection> {
    const batchSize = options.batchSize ?? 128;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new ArgumentError('batchSize', `expected a positive integer, got ${batchSize}`);
    const manifest = await readJointManifest(modelDir);
    let spans: Span[] = [];
    let fneDim = 0;
    if (manifest.features !== 'one-layer') {
      // The layer map of the CNN the model was trained on (its manifest's data.backbone).
      const backbone = jointBackbone(manifest);
      const layers =
        options.layers ?? (await verifiedCnn(backboneMode(backbone), undefined, backbone)).layers;
      spans = columnSpans(manifest, layers, join(modelDir, MANIFEST_FILE));
      fneDim = Math.max(...layers.map((l) => l.offset + l.channels));
    }
    const file = join(modelDir, IMAGE_PROJECTION_FILE);
    const bytes = await readVerified(modelDir, manifest, IMAGE_PROJECTION_FILE);
    const { session, provider } = await openSession(
      file,
      bytes,
      `image projection ${manifest.name}`,
      options,
    );
    requireIo(session, file, ['features'], 'embedding');
    return new ImageProjection(session, manifest, provider, spans, fneDim, batchSize, file);
  }

  get kind(): FeatureKind {
    return this.manifest.features;
  }

  /** Width of the projection's input. */
  get featureDim(): number {
    return this.manifest.featureDim;
  }

  /** Dimension of the joint space. */
  get dim(): number {
    return this.manifest.dim;
  }

  /** Writes the model's input row for one image (its kind's columns, as float32) into `out` at `at`. */
  features(image: ImageInput, out = new Float32Array(this.featureDim), at = 0, which = 0): Float32Array {
    if (this.kind === 'one-layer') {
      const v = image.oneLayer;
      if (!v || v.length !== this.featureDim)
        throw new ArgumentError(
          'images',
          `#${which + 1}: the one-layer model needs the ${this.featureDim}-d standardized one-layer vector, got ${v ? `${v.length} values` : 'none'}`,
        );
      out.set(v, at);
      return out;
    }
    const fne = image.fne;
    if (!fne || fne.length !== this.fneDim)
      throw new ArgumentError(
        'images',
        `#${which + 1}: the ${this.kind} model needs the ${this.fneDim}-d ternary FNE, got ${fne ? `${fne.length} values` : 'none (was the extractor run without statistics?)'}`,
      );
    let k = at;
    for (const { from, to } of this.spans) for (let j = from; j < to; j++) out[k++] = fne[j] as number;
    return out;
  }

  /** Row-major [images.length, dim] unit vectors, in input order. */
  async embed(images: readonly ImageInput[]): Promise<Float32Array> {
    const f = this.featureDim;
    const out = new Float32Array(images.length * this.dim);
    const rows = new Float32Array(Math.min(images.length, this.batchSize) * f);
    for (let start = 0; start < images.length; start += this.batchSize) {
      const n = Math.min(this.batchSize, images.length - start);
      for (let r = 0; r < n; r++) this.features(images[start + r] as ImageInput, rows, r * f, start + r);
      out.set(await this.run(rows.subarray(0, n * f), n), start * this.dim);
    }
    return out;
  }

  /** Row-major [n, dim] from rows that already are the model's input, [n, featureDim]. */
  async embedFeatures(rows: Float32Array): Promise<Float32Array> {
    const f = this.featureDim;
    if (rows.length % f !== 0)
      throw new ArgumentError('features', `expected rows of ${f} values, got ${rows.length} values`);
    const n = rows.length / f;
    const out = new Float32Array(n * this.dim);
    for (let start = 0; start < n; start += this.batchSize) {
      const m = Math.min(this.batchSize, n - start);
      out.set(await this.run(rows.subarray(start * f, (start + m) * f), m), start * this.dim);
    }
    return out;
  }

  private async run(rows: Float32Array, n: number): Promise<Float32Array> {
    // A fresh array: a view into a larger buffer is not what every onnxruntime binding copies correctly.
    const input = rows.byteOffset === 0 && rows.length === rows.buffer.byteLength / 4 ? rows : rows.slice();
    const result = await this.session.run({
      features: new ort.Tensor('float32', input, [n, this.featureDim]),
    });
    return floatOutput(result, 'embedding', this.file, [n, this.dim]);
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/**
 * The FNE column spans a ternary model reads, found BY NAME in the layer map, so a model keeps reading the
 * right columns even if the layer map's order ever changes. Where the manifest also records the columns it
 * was trained on, they must agree: a model trained on other columns would run, and silently mean nothing.
 */
export function columnSpans(
  manifest: JointManifest,
  layers: readonly LayerColumns[],
  manifestFile: string,
): Span[] {
  const byName = new Map(layers.map((l) => [l.name, l]));
  const spans: Span[] = [];
  let width = 0;
  for (const [k, name] of (manifest.layers ?? []).entries()) {
    const layer = byName.get(name);
    if (!layer)
      throw new ModelError(
        'invalid-model',
        manifestFile,
        `needs layer ${name}, which this CNN's layer map lacks: the model was trained on another network`,
      );
    const recorded = manifest.layerColumns?.[k];
    if (
      recorded &&
      (recorded.name !== name ||
        recorded.channels !== layer.channels ||
        (recorded.fneOffset !== undefined && recorded.fneOffset !== layer.offset))
    )
      throw new ModelError(
        'invalid-model',
        manifestFile,
        `layer ${name}: trained on ${recorded.channels} columns at ${recorded.fneOffset}, but this CNN has ${layer.channels} at ${layer.offset}`,
      );
    const last = spans.at(-1);
    if (last && last.to === layer.offset) last.to += layer.channels;
    else spans.push({ from: layer.offset, to: layer.offset + layer.channels });
    width += layer.channels;
  }
  if (width !== manifest.featureDim)
    throw new ModelError(
      'invalid-model',
      manifestFile,
      `its layers add up to ${width} columns, but featureDim is ${manifest.featureDim}`,
    );
  return spans;
}
