import type { IndexProgress, SearchFilters } from '../../src-main/contract/index.ts';
// By file, not through the contract's index: the bundle takes the file types without zod.
import { FILE_TYPES, type FileType } from '../../src-main/contract/photo-files.ts';

/** Seconds left as the locale writes it ("1 hr 5 min", "1時間5分"); '' while unknown. */
export function formatDuration(seconds: number | null, locale: string): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return '';
  const s = Math.round(seconds);
  const unit = (value: number, u: 'hour' | 'minute' | 'second') =>
    new Intl.NumberFormat(locale, { style: 'unit', unit: u, unitDisplay: 'short' }).format(value);
  if (s < 60) return unit(s, 'second');
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h === 0) return unit(m, 'minute');
  return m === 0 ? unit(h, 'hour') : `${unit(h, 'hour')} ${unit(m, 'minute')}`;
}

export function formatBytes(bytes: number, locale: string): string {
  const units = ['byte', 'kilobyte', 'megabyte', 'gigabyte'] as const;
  let value = bytes;
  let i = 0;
  while (value >= 1000 && i < units.length - 1) {
    value /= 1000;
    i++;
  }
  return new Intl.NumberFormat(locale, {
    style: 'unit',
    unit: units[i],
    unitDisplay: 'short',
    maximumFractionDigits: i === 0 ? 0 : 1,
  }).format(value);
}

export function formatScore(score: number): string {
  return score.toFixed(3);
}

/** 0..1 of the indexing run; 0 while the total is unknown. */
export function progressFraction(p: Pick<IndexProgress, 'done' | 'failed' | 'total'>): number {
  if (p.total <= 0) return 0;
  return Math.min(1, Math.max(0, p.done / p.total));
}

export function isActive(p: Pick<IndexProgress, 'state'>): boolean {
  return p.state === 'walking' || p.state === 'running' || p.state === 'paused';
}

export interface FilterForm {
  rootId: string;
  from: string;
  to: string;
  type: string;
}

export const emptyFilters: FilterForm = { rootId: '', from: '', to: '', type: '' };

/** The filter form as the contract's SearchFilters: empty fields are left out, not sent as ''. */
export function toSearchFilters(form: FilterForm): SearchFilters {
  const filters: SearchFilters = {};
  const rootId = Number(form.rootId);
  if (form.rootId && Number.isInteger(rootId) && rootId > 0) filters.rootId = rootId;
  if (/^\d{4}-\d{2}-\d{2}$/.test(form.from)) filters.from = form.from;
  if (/^\d{4}-\d{2}-\d{2}$/.test(form.to)) filters.to = form.to;
  if ((FILE_TYPES as readonly string[]).includes(form.type)) filters.types = [form.type as FileType];
  return filters;
}

/** The file name of a path from either OS, for titles and alt text. */
export function baseName(path: string): string {
  const parts = path.split(/[\\/]/);
  return parts[parts.length - 1] || path;
}
