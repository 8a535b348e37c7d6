import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { CnnBackbone } from '../cnn/index.ts';
import { ModelError } from '../errors.ts';
import { sha256Hex } from '../files.ts';
import { modelsDir } from '../paths.ts';

export const statsBinPath = join(modelsDir, 'fne', 'stats.bin');
export const statsMetaPath = join(modelsDir, 'fne', 'stats.json');

/** Each backbone's statistics: the default's where they always were, the others' in a folder of their own. */
export function statsPaths(backbone: CnnBackbone = 'mobilenet_v2'): { bin: string; meta: string } {
  if (backbone === 'mobilenet_v2') return { bin: statsBinPath, meta: statsMetaPath };
  return {
    bin: join(modelsDir, 'fne', backbone, 'stats.bin'),
    meta: join(modelsDir, 'fne', backbone, 'stats.json'),
  };
}

export interface FneStatsMeta {
  dim: number;
  /** CNN mode the activations came from. */
  mode: string;
  /** sha256 of the ONNX the statistics were computed with. */
  cnnSha256: string;
  dataset: string;
  split: string;
  images: number;
  /** Population (ddof 0) standard deviation, as numpy's default and the FNE reference code use. */
  std: 'population';
  layout: string;
  sha256: string;
  command: string;
  computedAt: string;
}

/** Per-feature mean and standard deviation of the raw Full-Network activations over training images. */
export interface FneStats {
  mean: Float32Array;
  std: Float32Array;
  meta: FneStatsMeta;
}

/** Running sums in float64, so 6,000 images of ~17k features lose nothing to rounding. */
export class StatsAccumulator {
  private readonly sum: Float64Array;
  private readonly sumSq: Float64Array;
  count = 0;

  constructor(readonly dim: number) {
    this.sum = new Float64Array(dim);
    this.sumSq = new Float64Array(dim);
  }

  add(row: Float32Array): void {
    for (let j = 0; j < this.dim; j++) {
      const v = row[j] as number;
      this.sum[j] = (this.sum[j] as number) + v;
      this.sumSq[j] = (this.sumSq[j] as number) + v * v;
    }
    this.count++;
  }

  /** The running sums, so a long computation can resume after an interruption: [count, ...sum, ...sumSq]. */
  checkpoint(): Float64Array {
    const data = new Float64Array(1 + 2 * this.dim);
    data[0] = this.count;
    data.set(this.sum, 1);
    data.set(this.sumSq, 1 + this.dim);
    return data;
  }

  /** An accumulator continuing from checkpoint(); undefined when the data is not one of this dimension. */
  static resume(dim: number, data: Float64Array): StatsAccumulator | undefined {
    if (data.length !== 1 + 2 * dim) return undefined;
    const acc = new StatsAccumulator(dim);
    acc.count = data[0] as number;
    acc.sum.set(data.subarray(1, 1 + dim));
    acc.sumSq.set(data.subarray(1 + dim));
    return acc;
  }

  finish(): { mean: Float32Array; std: Float32Array } {
    const mean = new Float32Array(this.dim);
    const std = new Float32Array(this.dim);
    for (let j = 0; j < this.dim; j++) {
      const m = (this.sum[j] as number) / this.count;
      mean[j] = m;
      std[j] = Math.sqrt(Math.max((this.sumSq[j] as number) / this.count - m * m, 0));
    }
    return { mean, std };
  }
}

export async function saveStats(
  mean: Float32Array,
  std: Float32Array,
  meta: Omit<FneStatsMeta, 'sha256' | 'layout' | 'dim'>,
  paths = statsPaths(),
): Promise<void> {
  const bin = new Uint8Array(mean.byteLength + std.byteLength);
  bin.set(new Uint8Array(mean.buffer, mean.byteOffset, mean.byteLength), 0);
  bin.set(new Uint8Array(std.buffer, std.byteOffset, std.byteLength), mean.byteLength);
  const full: FneStatsMeta = {
    dim: mean.length,
    ...meta,
    layout: `float32 little-endian: mean[${mean.length}] then std[${mean.length}]`,
    sha256: sha256Hex(bin),
  };
  await mkdir(dirname(paths.bin), { recursive: true });
  for (const [file, data] of [
    [paths.bin, bin],
    [paths.meta, `${JSON.stringify(full, null, 2)}\n`],
  ] as const) {
    await writeFile(`${file}.tmp`, data);
    await rename(`${file}.tmp`, file);
  }
}

export async function loadStats(binPath = statsBinPath, metaPath = statsMetaPath): Promise<FneStats> {
  let meta: FneStatsMeta;
  let bin: Buffer;
  try {
    meta = JSON.parse(await readFile(metaPath, 'utf8')) as FneStatsMeta;
    bin = await readFile(binPath);
  } catch (cause) {
    throw new ModelError('missing', binPath, 'FNE statistics are missing; run `npm run stats:compute`', {
      cause,
    });
  }
  const actual = sha256Hex(bin);
  if (actual !== meta.sha256 || bin.length !== meta.dim * 8) {
    throw new ModelError(
      'sha256-mismatch',
      binPath,
      `sha256 ${actual}, expected ${meta.sha256} (from ${metaPath})`,
    );
  }
  const floats = new Float32Array(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.length));
  return { mean: floats.subarray(0, meta.dim), std: floats.subarray(meta.dim), meta };
}
