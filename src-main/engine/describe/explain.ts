import { join } from 'node:path';
import type { Explanation, LayerContribution } from '../../contract/index.ts';
import { DEFAULT_CNN_MODE, verifiedCnn } from '../cnn/index.ts';
import { ArgumentError, ModelError } from '../errors.ts';
import { columnSpans, type ImageInput, type LayerColumns } from '../joint/index.ts';
import {
  IMAGE_PROJECTION_FILE,
  type JointManifest,
  MANIFEST_FILE,
  type ProjectionWeights,
  readJointManifest,
  readProjectionWeights,
  readVerified,
} from '../modelfiles/index.ts';

/** The one-layer baseline reads this layer (the CNN manifest's `oneLayer`). */
const ONE_LAYER = 'MobilenetV2/Conv_1/Relu6';

/**
 * The MobileNetV2 block a layer belongs to: stem = Conv + expanded_conv, block_N = expanded_conv_N,
 * head = Conv_1. Other networks fall back to the layer name's scope.
 */
export function blockOf(layer: string): string {
  const m = /(?:^|\/)expanded_conv(?:_(\d+))?\//.exec(layer);
  if (m) return m[1] ? `block_${m[1]}` : 'stem';
  if (/(?:^|\/)Conv\//.test(layer)) return 'stem';
  if (/(?:^|\/)Conv_1\//.test(layer)) return 'head';
  const parts = layer.split('/');
  return parts.length > 1 ? (parts[parts.length - 2] as string) : layer;
}

interface Layer {
  name: string;
  block: string;
  /** Where its columns sit in the engine's full FNE (ternary kinds). */
  fneOffset: number;
  /** Where its rows sit in W (the model's input). */
  row: number;
  channels: number;
}

export interface LayerExplainerOptions {
  /** The FNE's layer map (default: the built CNN's, as ImageProjection uses). */
  layers?: readonly LayerColumns[];
}

/**
 * Why an image matches a sentence, split by CNN layer. The projection has no bias, so with p = W·x the score
 * is p·s / max(‖p‖, eps), and p is a sum over the input's columns: each layer's columns give an exact share,
 * and the shares sum to the score (up to float rounding).
 */
export class LayerExplainer {
  private constructor(
    readonly manifest: JointManifest,
    private readonly weights: ProjectionWeights,
    private readonly layerList: readonly Layer[],
    private readonly fneDim: number,
  ) {}

  static async open(modelDir: string, options: LayerExplainerOptions = {}): Promise<LayerExplainer> {
    const manifest = await readJointManifest(modelDir);
    const manifestFile = join(modelDir, MANIFEST_FILE);
    let layers: Layer[];
    let fneDim = 0;
    if (manifest.features === 'one-layer') {
      layers = [
        { name: ONE_LAYER, block: blockOf(ONE_LAYER), fneOffset: 0, row: 0, channels: manifest.featureDim },
      ];
    } else {
      const map = options.layers ?? (await verifiedCnn(DEFAULT_CNN_MODE)).layers;
      columnSpans(manifest, map, manifestFile); // refuses a model trained on other columns
      const byName = new Map(map.map((l) => [l.name, l]));
      let row = 0;
      layers = (manifest.layers ?? []).map((name) => {
        const l = byName.get(name) as LayerColumns;
        const layer = { name, block: blockOf(name), fneOffset: l.offset, row, channels: l.channels };
        row += l.channels;
        return layer;
      });
      fneDim = Math.max(...map.map((l) => l.offset + l.channels));
    }
    const file = join(modelDir, IMAGE_PROJECTION_FILE);
    const weights = readProjectionWeights(
      await readVerified(modelDir, manifest, IMAGE_PROJECTION_FILE),
      file,
    );
    if (weights.featureDim !== manifest.featureDim || weights.dim !== manifest.dim)
      throw new ModelError(
        'invalid-model',
        file,
        `projection weight is [${weights.featureDim}, ${weights.dim}], manifest.json says [${manifest.featureDim}, ${manifest.dim}]`,
      );
    return new LayerExplainer(manifest, weights, layers, fneDim);
  }

  get dim(): number {
    return this.weights.dim;
  }

  /** Layer names in the model's column order, with their block. */
  get layers(): ReadonlyArray<{ name: string; block: string; channels: number }> {
    return this.layerList.map(({ name, block, channels }) => ({ name, block, channels }));
  }

  /** The model input row of one image (its kind's columns, as float32), as ImageProjection builds it. */
  private row(image: Int8Array | ImageInput, which: number): Float32Array {
    const input: ImageInput = image instanceof Int8Array ? { fne: image } : image;
    const f = this.weights.featureDim;
    const x = new Float32Array(f);
    if (this.manifest.features === 'one-layer') {
      const v = input.oneLayer;
      if (!v || v.length !== f)
        throw new ArgumentError(
          'image',
          `#${which + 1}: the one-layer model needs the ${f}-d standardized one-layer vector, got ${v ? `${v.length} values` : 'none'}`,
        );
      x.set(v);
      return x;
    }
    const fne = input.fne;
    if (!fne || fne.length !== this.fneDim)
      throw new ArgumentError(
        'fne',
        `#${which + 1}: expected the ${this.fneDim}-d ternary FNE, got ${fne ? `${fne.length} values` : 'none'}`,
      );
    for (const l of this.layerList)
      for (let c = 0; c < l.channels; c++) x[l.row + c] = fne[l.fneOffset + c] as number;
    return x;
  }

  private checkSentence(sentence: Float32Array): void {
    if (sentence.length !== this.weights.dim)
      throw new ArgumentError(
        'sentence',
        `expected a ${this.weights.dim}-d sentence vector, got ${sentence.length} values`,
      );
  }

  /** W·s, one value per input column: a column's share of the unnormalized score. */
  private columnScores(sentence: Float32Array): Float64Array {
    const { w, featureDim: f, dim: d } = this.weights;
    const ws = new Float64Array(f);
    for (let r = 0; r < f; r++) {
      let acc = 0;
      const base = r * d;
      for (let j = 0; j < d; j++) acc += (w[base + j] as number) * (sentence[j] as number);
      ws[r] = acc;
    }
    return ws;
  }

  private explainRow(x: Float32Array, ws: Float64Array): Explanation {
    const { w, dim: d, eps } = this.weights;
    const p = new Float64Array(d);
    for (let r = 0; r < x.length; r++) {
      const v = x[r] as number;
      if (v === 0) continue;
      const base = r * d;
      for (let j = 0; j < d; j++) p[j] = (p[j] as number) + v * (w[base + j] as number);
    }
    let norm = 0;
    for (let j = 0; j < d; j++) norm += (p[j] as number) ** 2;
    norm = Math.max(Math.sqrt(norm), eps);
    const layers: LayerContribution[] = [];
    const blocks = new Map<string, number>();
    let score = 0;
    for (const l of this.layerList) {
      let acc = 0;
      for (let c = 0; c < l.channels; c++) acc += (x[l.row + c] as number) * (ws[l.row + c] as number);
      const contribution = acc / norm;
      score += contribution;
      layers.push({ name: l.name, block: l.block, contribution });
      blocks.set(l.block, (blocks.get(l.block) ?? 0) + contribution);
    }
    return { score, layers, blocks: [...blocks].map(([block, contribution]) => ({ block, contribution })) };
  }

  /**
   * The score of one image (its ternary FNE, or an ImageInput for the one-layer model) against one unit
   * sentence vector, and its exact split by layer and by block (blocks in network order).
   */
  explain(image: Int8Array | ImageInput, sentence: Float32Array): Explanation {
    this.checkSentence(sentence);
    return this.explainRow(this.row(image, 0), this.columnScores(sentence));
  }

  /** explain() for many images against one sentence; W·s is computed once. */
  explainMany(images: ReadonlyArray<Int8Array | ImageInput>, sentence: Float32Array): Explanation[] {
    this.checkSentence(sentence);
    const ws = this.columnScores(sentence);
    return images.map((image, k) => this.explainRow(this.row(image, k), ws));
  }
}
