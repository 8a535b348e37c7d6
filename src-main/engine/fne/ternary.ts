/** The paper's discretization thresholds on standardized features (HPAI-BSC/fne). */
export interface Thresholds {
  /** Values above become +1. */
  positive: number;
  /** Values below become -1. */
  negative: number;
}
export const DEFAULT_THRESHOLDS: Thresholds = { positive: 0.15, negative: -0.25 };

export function isPaperThresholds(t: Thresholds): boolean {
  return t.positive === DEFAULT_THRESHOLDS.positive && t.negative === DEFAULT_THRESHOLDS.negative;
}

/**
 * Standardizes `raw[offset .. offset+dim)` with training statistics. A feature that never varied in
 * training (std 0, e.g. a ReLU channel that is always off) carries no information: it standardizes to 0.
 */
export function standardize(
  raw: Float32Array,
  mean: Float32Array,
  std: Float32Array,
  offset = 0,
  out?: Float32Array,
): Float32Array {
  const dim = mean.length;
  const z = out ?? new Float32Array(dim);
  for (let j = 0; j < dim; j++) {
    const s = std[j] as number;
    z[j] = s > 0 ? ((raw[offset + j] as number) - (mean[j] as number)) / s : 0;
  }
  return z;
}

/** {-1, 0, +1} per feature, one byte each. */
export function ternarize(z: Float32Array, thresholds: Thresholds = DEFAULT_THRESHOLDS): Int8Array {
  // Compared in float32, as numpy compares a float32 array with a Python scalar (HPAI-BSC/fne):
  // 0.15 as float32 is then not above the threshold 0.15.
  const pos = Math.fround(thresholds.positive);
  const neg = Math.fround(thresholds.negative);
  const t = new Int8Array(z.length);
  for (let j = 0; j < z.length; j++) {
    const v = z[j] as number;
    t[j] = v > pos ? 1 : v < neg ? -1 : 0;
  }
  return t;
}

/** Shares of -1, 0 and +1. */
export function ternaryShares(t: Int8Array): { negative: number; zero: number; positive: number } {
  let neg = 0;
  let pos = 0;
  for (const v of t) {
    if (v < 0) neg++;
    else if (v > 0) pos++;
  }
  return { negative: neg / t.length, zero: (t.length - neg - pos) / t.length, positive: pos / t.length };
}
