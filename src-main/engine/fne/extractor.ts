import {
  type CnnBackbone,
  type CnnMode,
  CnnSession,
  cnnModelPath,
  DEFAULT_CNN_MODE,
  type ProviderName,
  verifiedCnn,
} from '../cnn/index.ts';
import { ImageError, ModelError } from '../errors.ts';
import { CNN_SIZE, type DecodedImage, decodeForCnn } from '../image/index.ts';
import { type FneStats, loadStats, statsPaths } from './stats.ts';
import { DEFAULT_THRESHOLDS, standardize, type Thresholds, ternarize } from './ternary.ts';

export interface ImageFeatures {
  file: string;
  width: number;
  height: number;
  format: string;
  /** The ternary Full-Network Embedding; undefined when the extractor runs without statistics. */
  fne: Int8Array | undefined;
  /** The one-layer baseline (the last conv, pooled), standardized when statistics are loaded. */
  oneLayer: Float32Array;
  /** Class probabilities of the network's own classifier. */
  probs: Float32Array;
  /** The raw pooled activations, only when asked for (statistics, diagnostics). */
  fneRaw?: Float32Array;
}

export type ExtractResult =
  | { ok: true; features: ImageFeatures }
  | { ok: false; file: string; error: ImageError };

export interface ExtractorOptions {
  /** Default mobilenet_v2; resnet50 runs in float mode only. */
  backbone?: CnnBackbone;
  mode?: CnnMode;
  /** 'none' extracts raw activations only: how the statistics themselves are computed. */
  stats?: FneStats | 'none';
  thresholds?: Thresholds;
  threads?: number;
  providers?: ProviderName[];
  log?: (line: string) => void;
}

export interface ExtractOptions {
  batchSize?: number;
  keepRaw?: boolean;
  maxPixels?: number;
}

type Decoded = { ok: true; image: DecodedImage } | { ok: false; file: string; error: ImageError };

/** The whole image path: photo file -> pixels -> one CNN pass -> ternary FNE + one-layer vector. */
export class FneExtractor {
  private constructor(
    readonly cnn: CnnSession,
    private readonly stats: FneStats | undefined,
    private readonly thresholds: Thresholds,
    readonly backbone: CnnBackbone,
  ) {}

  static async open(options: ExtractorOptions = {}): Promise<FneExtractor> {
    const mode = options.mode ?? DEFAULT_CNN_MODE;
    const backbone = options.backbone ?? 'mobilenet_v2';
    const manifest = await verifiedCnn(mode, undefined, backbone);
    const paths = statsPaths(backbone);
    const stats =
      options.stats === 'none' ? undefined : (options.stats ?? (await loadStats(paths.bin, paths.meta)));
    if (stats && stats.meta.dim !== manifest.fneDim)
      throw new ModelError(
        'invalid-model',
        options.stats ? 'stats' : paths.meta,
        `these statistics are of a ${stats.meta.dim}-d FNE, but the ${backbone} CNN gives ${manifest.fneDim} features; run \`npm run stats:compute${backbone === 'mobilenet_v2' ? '' : ` -- --backbone ${backbone}`}\``,
      );
    const cnn = await CnnSession.open(cnnModelPath(mode, undefined, backbone), manifest, {
      ...(options.threads ? { threads: options.threads } : {}),
      ...(options.providers ? { providers: options.providers } : {}),
      ...(options.log ? { log: options.log } : {}),
    });
    return new FneExtractor(cnn, stats, options.thresholds ?? DEFAULT_THRESHOLDS, backbone);
  }

  get fneDim(): number {
    return this.cnn.info.fneDim;
  }

  /**
   * Features of every file, in input order. A file that cannot be decoded yields its ImageError and the
   * rest go on. The next batch decodes (on libvips' threads) while the CNN runs the current one.
   */
  async *extract(files: Iterable<string>, options: ExtractOptions = {}): AsyncGenerator<ExtractResult> {
    const batchSize = options.batchSize ?? 8;
    const list = [...files];
    const decodeBatch = (start: number) =>
      Promise.all(
        list.slice(start, start + batchSize).map(
          (file): Promise<Decoded> =>
            decodeForCnn(file, options.maxPixels ? { maxPixels: options.maxPixels } : undefined).then(
              (image) => ({ ok: true, image }),
              (error: unknown) => {
                if (error instanceof ImageError) return { ok: false, file, error };
                throw error;
              },
            ),
        ),
      );
    let pending = list.length > 0 ? decodeBatch(0) : undefined;
    for (let start = 0; pending; start += batchSize) {
      const decoded = await pending;
      pending = start + batchSize < list.length ? decodeBatch(start + batchSize) : undefined;
      const images = decoded.flatMap((d) => (d.ok ? [d.image] : []));
      const features = await this.extractDecoded(images, options.keepRaw ?? false);
      let k = 0;
      for (const d of decoded) {
        if (d.ok) yield { ok: true, features: features[k++] as ImageFeatures };
        else yield d;
      }
    }
  }

  /** Runs the CNN on already decoded images. */
  async extractDecoded(images: DecodedImage[], keepRaw = false): Promise<ImageFeatures[]> {
    if (images.length === 0) return [];
    const frame = CNN_SIZE * CNN_SIZE * 3;
    const pixels = new Uint8Array(images.length * frame);
    for (const [i, image] of images.entries()) pixels.set(image.pixels, i * frame);
    const { fneRaw, probs } = await this.cnn.run(pixels, images.length);
    return images.map((image, i) => {
      const raw = this.rows(fneRaw, i, this.fneDim);
      return {
        file: image.file,
        width: image.width,
        height: image.height,
        format: image.format,
        ...this.embed(raw),
        probs: this.rows(probs, i, this.cnn.info.classes).slice(),
        ...(keepRaw ? { fneRaw: raw.slice() } : {}),
      };
    });
  }

  /** Ternary FNE and standardized one-layer vector from one image's raw pooled activations. */
  embed(raw: Float32Array): { fne: Int8Array | undefined; oneLayer: Float32Array } {
    const { offset, channels } = this.cnn.info.oneLayer;
    if (!this.stats) return { fne: undefined, oneLayer: raw.slice(offset, offset + channels) };
    const z = standardize(raw, this.stats.mean, this.stats.std);
    return { fne: ternarize(z, this.thresholds), oneLayer: z.slice(offset, offset + channels) };
  }

  private rows(data: Float32Array, i: number, width: number): Float32Array {
    return data.subarray(i * width, (i + 1) * width);
  }

  async close(): Promise<void> {
    await this.cnn.close();
  }
}
