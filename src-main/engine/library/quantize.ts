/**
 * Vectors are stored in the catalog as int8 with one float scale per vector (D + 4 bytes instead of 4·D):
 * that keeps DB + index within the 4 KB-per-photo budget. The index is built from the dequantized vectors,
 * so a rebuild from the catalog reproduces exactly what was indexed. The cosine cost is measured in
 * docs/BENCHMARKS.md (## Library).
 */
interface QuantizedVector {
  /** One int8 per dimension, as the bytes SQLite stores. */
  q: Buffer;
  /** x[i] ≈ q[i] * scale. */
  scale: number;
}

export function quantize(vector: Float32Array): QuantizedVector {
  let max = 0;
  for (const x of vector) max = Math.max(max, Math.abs(x));
  const scale = max > 0 ? max / 127 : 1;
  const q = Buffer.alloc(vector.length);
  for (let i = 0; i < vector.length; i++) q.writeInt8(Math.round((vector[i] as number) / scale), i);
  return { q, scale };
}

/** The stored vector back as floats, renormalized to unit length (cosine is all the index uses). */
export function dequantize(q: Uint8Array, scale: number): Float32Array {
  const ints = new Int8Array(q.buffer, q.byteOffset, q.byteLength);
  const out = new Float32Array(ints.length);
  let norm = 0;
  for (let i = 0; i < ints.length; i++) {
    const x = (ints[i] as number) * scale;
    out[i] = x;
    norm += x * x;
  }
  norm = Math.sqrt(norm);
  if (norm > 0) for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) / norm;
  return out;
}

export function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}
