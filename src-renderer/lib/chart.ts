import type { Explanation } from '../../src-main/contract/index.ts';

/** "Why this match" as bars: one per network block, in network order (stem first, head last). */
export interface Bar {
  block: string;
  contribution: number;
  /** Share of the largest |contribution|, in [0, 1]. */
  magnitude: number;
  positive: boolean;
}

function blockOrder(block: string): number {
  if (block === 'stem') return -1;
  if (block === 'head') return 1000;
  const n = /(\d+)/.exec(block);
  return n ? Number(n[1]) : 500;
}

export function blockBars(explanation: Pick<Explanation, 'blocks'>): Bar[] {
  const blocks = [...explanation.blocks].sort((a, b) => blockOrder(a.block) - blockOrder(b.block));
  const max = Math.max(0, ...blocks.map((b) => Math.abs(b.contribution)));
  return blocks.map((b) => ({
    block: b.block,
    contribution: b.contribution,
    magnitude: max > 0 ? Math.abs(b.contribution) / max : 0,
    positive: b.contribution >= 0,
  }));
}

/** Which third of the network carries most of the positive evidence: words for the one-line summary. */
export function dominantStage(bars: Bar[]): 'early' | 'middle' | 'late' | null {
  const positive = bars.filter((b) => b.positive && b.contribution > 0);
  if (positive.length === 0) return null;
  const third = bars.length / 3;
  const sums = [0, 0, 0];
  bars.forEach((b, i) => {
    const stage = Math.min(2, Math.floor(i / third));
    if (b.contribution > 0) sums[stage] = (sums[stage] ?? 0) + b.contribution;
  });
  const best = sums.indexOf(Math.max(...sums));
  return (['early', 'middle', 'late'] as const)[best] ?? null;
}
