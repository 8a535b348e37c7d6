import { describe, expect, it } from 'vitest';
import { ArgumentError } from '../src-main/engine/errors.ts';
import { evaluateRetrieval, rankMetrics, rankRetrieval } from '../src-main/engine/eval/index.ts';

/** Builds the protocol's inputs from rows of numbers. */
function input(images: number[][], captions: number[][], captionImage: number[]) {
  const dim = (images[0] as number[]).length;
  return {
    images: Float32Array.from(images.flat()),
    captions: Float32Array.from(captions.flat()),
    captionImage,
    dim,
  };
}

/**
 * The protocol written the slow, obvious way, independently of the blocked implementation: sort every list by
 * score, break ties by putting the ground truth LAST among equals, read off the first ground truth's position.
 */
function bruteForce(images: number[][], captions: number[][], captionImage: number[]) {
  const score = (c: number, i: number) =>
    (captions[c] as number[]).reduce((s, v, k) => s + v * ((images[i] as number[])[k] as number), 0);
  const t2i = captions.map((_, c) => {
    const order = images
      .map((_, i) => ({ i, s: score(c, i), gt: i === captionImage[c] }))
      .sort((a, b) => b.s - a.s || Number(a.gt) - Number(b.gt));
    return order.findIndex((e) => e.gt) + 1;
  });
  const i2t = images.map((_, i) => {
    const order = captions
      .map((_, c) => ({ c, s: score(c, i), gt: captionImage[c] === i }))
      .sort((a, b) => b.s - a.s || Number(a.gt) - Number(b.gt));
    return order.findIndex((e) => e.gt) + 1;
  });
  return { i2t, t2i };
}

/** Deterministic, so a failure can be reproduced. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('the retrieval protocol', async () => {
  it('a perfect ranking gives R@1 = R@5 = R@10 = 100 and median rank 1 both ways', async () => {
    const basis = [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ];
    const r = await evaluateRetrieval(input(basis, [...basis, ...basis], [0, 1, 2, 0, 1, 2]));
    for (const m of [r.i2t, r.t2i])
      expect(m).toMatchObject({ r1: 100, r5: 100, r10: 100, medr: 1, meanr: 1 });
    expect(r.i2t.queries).toBe(3);
    expect(r.t2i.queries).toBe(6);
    expect(r.rsum).toBe(600);
  });

  it('counts ties against the ground truth: a negative scoring exactly as high ranks above it', async () => {
    // Caption 1 (of image B) is identical to caption 0 (of image A), and points straight at A.
    const r = await rankRetrieval(
      input(
        [
          [1, 0],
          [0, 1],
        ],
        [
          [1, 0],
          [1, 0],
        ],
        [0, 1],
      ),
    );
    // A: its caption scores 1, B's caption also 1 -> 2. B: its caption scores 0, A's caption 0 too -> 2.
    expect([...r.i2t]).toEqual([2, 2]);
    // Caption 0: A 1 > B 0 -> 1. Caption 1: its image B scores 0 below A's 1 -> 2.
    expect([...r.t2i]).toEqual([1, 2]);
  });

  it('a model that scores everything equal gets the worst ranks, not the best', async () => {
    const zeros = (n: number) => Array.from({ length: n }, () => [0, 0, 0, 0, 0]);
    const captionImage = [0, 0, 1, 2, 2, 2];
    const r = await rankRetrieval(input(zeros(3), zeros(6), captionImage));
    expect([...r.t2i]).toEqual([3, 3, 3, 3, 3, 3]);
    // Image 0 has 2 captions: 4 others tie with it -> 5; image 1: 5 others -> 6; image 2: 3 others -> 4.
    expect([...r.i2t]).toEqual([5, 6, 4]);
  });

  it('annotation takes the BEST-ranked of several ground-truth captions; the others never count against it', async () => {
    // One image; scores are the first coordinate. Its captions score 0.2, 0.9 and 0.9; negatives 0.95 and 0.5.
    const images = [
      [1, 0],
      [0, 1],
    ];
    const captions = [
      [0.2, 0],
      [0.9, 0],
      [0.95, 0],
      [0.9, 0],
      [0.5, 0],
      [0, 1],
    ];
    const captionImage = [0, 0, 1, 0, 1, 1];
    const r = await rankRetrieval(input(images, captions, captionImage));
    // Only the 0.95 negative is above the best (0.9); the tied second 0.9 is a ground truth too.
    expect(r.i2t[0]).toBe(2);
    expect([...r.i2t]).toEqual(bruteForce(images, captions, captionImage).i2t);
  });

  it('handles any number of captions per image (1, 4 and 2 here) and matches brute force', async () => {
    const images = [
      [1, 0.5, 0],
      [0, 1, 0.25],
      [0.5, 0, 1],
    ];
    const captions = [
      [1, 0, 0],
      [0, 1, 0],
      [0.5, 0.5, 0],
      [0, 0.5, 1],
      [1, 1, 1],
      [0, 0, 1],
      [0.25, 0, 0.5],
    ];
    const captionImage = [0, 1, 1, 1, 1, 2, 2];
    const r = await evaluateRetrieval(input(images, captions, captionImage));
    const expected = bruteForce(images, captions, captionImage);
    expect([...r.ranks.i2t]).toEqual(expected.i2t);
    expect([...r.ranks.t2i]).toEqual(expected.t2i);
    expect(r.i2t.queries).toBe(3);
    expect(r.t2i.queries).toBe(7);
  });

  it('summarizes ranks as the VSE code does: R@K in percent, median floored, mean', async () => {
    expect(rankMetrics([1, 1, 6, 11])).toEqual({ queries: 4, r1: 50, r5: 50, r10: 75, medr: 3, meanr: 4.75 });
    expect(rankMetrics([7, 2, 1])).toMatchObject({ medr: 2, r1: (100 * 1) / 3, r10: 100 });
  });

  it('agrees with brute force on random data full of ties, 1 to 5 captions per image', async () => {
    const rand = rng(8);
    // Entries in {-1, 0, 1}: dot products are small integers, exact in float32, so ties are everywhere.
    const vec = (dim: number) => Array.from({ length: dim }, () => Math.floor(rand() * 3) - 1);
    const images = Array.from({ length: 41 }, () => vec(7));
    const captionImage = images.flatMap((_, i) =>
      Array.from({ length: 1 + Math.floor(rand() * 5) }, () => i),
    );
    const captions = captionImage.map(() => vec(7));
    const r = await rankRetrieval(input(images, captions, captionImage));
    const expected = bruteForce(images, captions, captionImage);
    expect([...r.i2t]).toEqual(expected.i2t);
    expect([...r.t2i]).toEqual(expected.t2i);
  });

  it('agrees with brute force on random real-valued data spanning several blocks, whatever the block size', async () => {
    const rand = rng(2017);
    // Multiples of 1/64: every product and sum is exact in float32 and in float64, so the brute force's
    // float64 scores and onnxruntime's float32 ones are the same numbers, near-ties included.
    const q = (x: number) => Math.round(x * 64) / 64;
    const vec = () => Array.from({ length: 33 }, () => q(rand() * 2 - 1));
    const images = Array.from({ length: 300 }, vec);
    const captionImage = images.flatMap((_, i) => Array.from({ length: 1 + (i % 9) }, () => i));
    // Captions near their image, so the ranks are spread rather than all near the middle.
    const captions = captionImage.map((i) => (images[i] as number[]).map((v) => q(v + (rand() * 2 - 1) * 3)));
    const expected = bruteForce(images, captions, captionImage);
    for (const blockSize of [256, 97, 1]) {
      const r = await evaluateRetrieval(input(images, captions, captionImage), { blockSize });
      expect([...r.ranks.i2t]).toEqual(expected.i2t);
      expect([...r.ranks.t2i]).toEqual(expected.t2i);
      expect(r.t2i.r1).toBeGreaterThan(0);
      expect(r.t2i.medr).toBeGreaterThan(1);
    }
  });

  it('refuses inputs it cannot rank, naming the argument', async () => {
    const ok = input([[1, 0]], [[1, 0]], [0]);
    const subject = async (p: Promise<unknown>) => {
      const error = await p.then(
        () => new Error('no error thrown'),
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ArgumentError);
      return (error as ArgumentError).subject;
    };
    expect(await subject(rankRetrieval({ ...ok, captionImage: [1] }))).toBe('captionImage');
    expect(
      await subject(
        rankRetrieval(
          input(
            [
              [1, 0],
              [0, 1],
            ],
            [[1, 0]],
            [0],
          ),
        ),
      ),
    ).toBe('captionImage');
    expect(await subject(rankRetrieval({ ...ok, captions: Float32Array.of(Number.NaN, 0) }))).toBe(
      'captions',
    );
    expect(await subject(rankRetrieval({ ...ok, images: Float32Array.of(1, 0, 0) }))).toBe('images');
    expect(await subject(rankRetrieval({ ...ok, captionImage: [0, 0] }))).toBe('captionImage');
    expect(await subject(rankRetrieval(ok, { blockSize: 0 }))).toBe('blockSize');
  });
});
