/** Layout and keyboard logic of the virtualized result grid (pure, so it is unit-tested in Node). */

export const TILE_MIN = 180;
export const GAP = 8;

/** How many tiles of at least `minTile` px fit across `width` px. */
export function columnsFor(width: number, minTile = TILE_MIN, gap = GAP): number {
  if (!Number.isFinite(width) || width <= 0) return 1;
  return Math.max(1, Math.floor((width + gap) / (minTile + gap)));
}

/** The tile's side once `cols` tiles share `width` px. */
export function tileSize(width: number, cols: number, gap = GAP): number {
  return Math.max(40, Math.floor((width - gap * (cols - 1)) / cols));
}

export type NavKey =
  | 'ArrowLeft'
  | 'ArrowRight'
  | 'ArrowUp'
  | 'ArrowDown'
  | 'Home'
  | 'End'
  | 'PageUp'
  | 'PageDown';

export function isNavKey(key: string): key is NavKey {
  return ['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown', 'Home', 'End', 'PageUp', 'PageDown'].includes(
    key,
  );
}

/** The selection after a key: arrows move by one tile or one row, pages by `pageRows` rows; clamped. */
export function moveSelection(index: number, key: NavKey, cols: number, count: number, pageRows = 4): number {
  if (count <= 0) return -1;
  if (index < 0) return 0;
  const step: Record<NavKey, number> = {
    ArrowLeft: -1,
    ArrowRight: 1,
    ArrowUp: -cols,
    ArrowDown: cols,
    PageUp: -cols * pageRows,
    PageDown: cols * pageRows,
    Home: -Infinity,
    End: Infinity,
  };
  const next = index + step[key];
  if (next === -Infinity || next < 0) return key === 'ArrowUp' ? index : 0;
  if (next === Infinity || next >= count) return key === 'ArrowDown' ? index : count - 1;
  return next;
}

/** The pages (of `pageSize` results) that rows first..last of a `cols`-wide grid need. */
export function pagesForRows(
  first: number,
  last: number,
  cols: number,
  pageSize: number,
  count: number,
): number[] {
  if (count <= 0 || last < first) return [];
  const start = Math.max(0, first * cols);
  const end = Math.min(count - 1, (last + 1) * cols - 1);
  if (end < start) return [];
  const pages: number[] = [];
  for (let p = Math.floor(start / pageSize); p <= Math.floor(end / pageSize); p++) pages.push(p);
  return pages;
}
