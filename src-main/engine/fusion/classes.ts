import { IMAGENET_CLASSES } from '../cnn/index.ts';
import { ArgumentError } from '../errors.ts';

/**
 * How many of a photo's most probable ImageNet classes the catalog keeps. Measured (docs/RESULTS.md, "What the
 * ranking needs of the classifier"): the top 20 at 8 bits rank Flickr8k val as all 1000 float32 do (rsum 250.4)
 * and the demo set 0.6 lower (313.0 vs 313.6), at 60 bytes a photo; the top 5 lose 6.5 on the demo.
 */
export const TOP_CLASSES = 20;
/** 8-bit probabilities on a log scale: q = round(-ln p · STEPS_PER_NAT), so 1 nat = 16 steps, p ≥ e^-15.9. */
const STEPS_PER_NAT = 16;
const ENTRY_BYTES = 3;

/** The top classes of one photo: class ids 0..999 and their probabilities, most probable first. */
interface TopClasses {
  classes: Uint16Array;
  probs: Float32Array;
}

/** A photo's classifier probabilities (1000, imagenetClassProbs order) -> the `k` largest. */
export function topClasses(probs: Float32Array, k = TOP_CLASSES): TopClasses {
  if (probs.length !== IMAGENET_CLASSES)
    throw new ArgumentError('probs', `expected ${IMAGENET_CLASSES} class probabilities, got ${probs.length}`);
  const order = Array.from({ length: probs.length }, (_, i) => i).sort(
    (a, b) => (probs[b] as number) - (probs[a] as number) || a - b,
  );
  const chosen = order.slice(0, Math.min(k, probs.length));
  return { classes: Uint16Array.from(chosen), probs: Float32Array.from(chosen, (i) => probs[i] as number) };
}

function quantizeProb(p: number): number {
  if (!(p > 0)) return 255;
  return Math.min(255, Math.max(0, Math.round(-Math.log(p) * STEPS_PER_NAT)));
}

function dequantizeProb(q: number): number {
  return Math.exp(-q / STEPS_PER_NAT);
}

/** The catalog's bytes: per class uint16 id (little-endian) + uint8 log-probability. */
export function encodeTopClasses(top: TopClasses): Buffer {
  const out = Buffer.alloc(top.classes.length * ENTRY_BYTES);
  for (let k = 0; k < top.classes.length; k++) {
    out.writeUInt16LE(top.classes[k] as number, k * ENTRY_BYTES);
    out.writeUInt8(quantizeProb(top.probs[k] as number), k * ENTRY_BYTES + 2);
  }
  return out;
}

export function decodeTopClasses(bytes: Uint8Array): TopClasses {
  if (bytes.length % ENTRY_BYTES !== 0)
    throw new ArgumentError('classes', `${bytes.length} bytes is not a whole number of class entries`);
  const n = bytes.length / ENTRY_BYTES;
  const classes = new Uint16Array(n);
  const probs = new Float32Array(n);
  for (let k = 0; k < n; k++) {
    const at = k * ENTRY_BYTES;
    classes[k] = (bytes[at] as number) | ((bytes[at + 1] as number) << 8);
    probs[k] = dequantizeProb(bytes[at + 2] as number);
  }
  return { classes, probs };
}

/**
 * Every photo's top classes in three flat arrays (no object per photo), and the same entries grouped by
 * class for scoring.
 */
export class ClassTable {
  private ids: Int32Array;
  private classes: Uint16Array;
  private probs: Float32Array;
  private rowOf = new Map<number, number>();
  private count = 0;
  private postings: ClassPostings | null = null;

  constructor(
    readonly k = TOP_CLASSES,
    capacity = 1024,
  ) {
    this.ids = new Int32Array(capacity);
    this.classes = new Uint16Array(capacity * k);
    this.probs = new Float32Array(capacity * k);
  }

  get size(): number {
    return this.count;
  }

  has(id: number): boolean {
    return this.rowOf.has(id);
  }

  /** The row of a photo in view(), or undefined. */
  row(id: number): number | undefined {
    return this.rowOf.get(id);
  }

  /** Adds or replaces a photo's classes (fewer than k: the rest stay empty). */
  set(id: number, top: TopClasses): void {
    this.postings = null;
    let row = this.rowOf.get(id);
    if (row === undefined) {
      if (this.count === this.ids.length) this.grow();
      row = this.count++;
      this.rowOf.set(id, row);
      this.ids[row] = id;
    }
    const base = row * this.k;
    this.probs.fill(0, base, base + this.k);
    const n = Math.min(this.k, top.classes.length);
    this.classes.set(top.classes.subarray(0, n), base);
    this.probs.set(top.probs.subarray(0, n), base);
  }

  delete(id: number): void {
    const row = this.rowOf.get(id);
    if (row === undefined) return;
    this.postings = null;
    const last = --this.count;
    if (row !== last) {
      const moved = this.ids[last] as number;
      this.ids[row] = moved;
      this.classes.copyWithin(row * this.k, last * this.k, (last + 1) * this.k);
      this.probs.copyWithin(row * this.k, last * this.k, (last + 1) * this.k);
      this.rowOf.set(moved, row);
    }
    this.rowOf.delete(id);
  }

  private grow(): void {
    const capacity = this.ids.length * 2;
    const ids = new Int32Array(capacity);
    ids.set(this.ids);
    const classes = new Uint16Array(capacity * this.k);
    classes.set(this.classes);
    const probs = new Float32Array(capacity * this.k);
    probs.set(this.probs);
    this.ids = ids;
    this.classes = classes;
    this.probs = probs;
  }

  /** Row access for scoring: ids[row], and the row's k classes/probs at row * k; byClass() the same by class. */
  view(): ClassRows {
    return {
      ids: this.ids,
      classes: this.classes,
      probs: this.probs,
      size: this.count,
      k: this.k,
      byClass: () => {
        this.postings ??= postingsOf(this.classes, this.probs, this.count * this.k, this.k);
        return this.postings;
      },
    };
  }
}

/** The stored entries grouped by class: class c's rows and probabilities at start[c] .. start[c + 1]. */
interface ClassPostings {
  start: Int32Array;
  rows: Int32Array;
  probs: Float32Array;
}

export interface ClassRows {
  ids: Int32Array;
  classes: Uint16Array;
  probs: Float32Array;
  size: number;
  k: number;
  /**
   * Built on first use after a change and kept: a query then reads only the entries of the classes it
   * names (a quarter of them for "dog"), not all 2M of 100k photos.
   */
  byClass(): ClassPostings;
}

function postingsOf(classes: Uint16Array, probs: Float32Array, entries: number, k: number): ClassPostings {
  // Entries of probability 0 (a row with fewer than k classes) add nothing and are left out.
  const start = new Int32Array(IMAGENET_CLASSES + 1);
  for (let e = 0; e < entries; e++) {
    if (probs[e] === 0) continue;
    const c = (classes[e] as number) + 1;
    start[c] = (start[c] as number) + 1;
  }
  for (let c = 0; c < IMAGENET_CLASSES; c++) start[c + 1] = (start[c + 1] as number) + (start[c] as number);
  const next = start.slice(0, IMAGENET_CLASSES);
  const rows = new Int32Array(start[IMAGENET_CLASSES] as number);
  const byClassProbs = new Float32Array(rows.length);
  for (let e = 0; e < entries; e++) {
    if (probs[e] === 0) continue;
    const c = classes[e] as number;
    const at = next[c] as number;
    next[c] = at + 1;
    rows[at] = Math.floor(e / k);
    byClassProbs[at] = probs[e] as number;
  }
  return { start, rows, probs: byClassProbs };
}
