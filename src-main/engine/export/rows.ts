import { stringify } from 'csv-stringify/sync';
import { ArgumentError } from '../errors.ts';

/** A caption or tag as the catalog holds it; only the text is required. */
interface Described {
  text: string;
  score?: number | null;
  confidence?: number | null;
  source?: 'auto' | 'user';
  status?: 'proposed' | 'accepted' | 'rejected';
}

export interface ExportRow {
  path: string;
  captions: ReadonlyArray<Described>;
  tags: ReadonlyArray<Described>;
}

export type ExportFormat = 'csv' | 'json';

/** Reviewed descriptions first: what an editor accepted is what a catalogue wants. */
function kept(items: ReadonlyArray<Described>): Described[] {
  return items.filter((i) => i.status !== 'rejected');
}

/**
 * The catalogue as text. JSON: one object per photo with its non-rejected captions and tags (text, score or
 * confidence, source, status). CSV (RFC 4180, UTF-8, header row): path, the accepted caption, the other
 * captions, the accepted tags, the proposed tags; list cells are joined with " | " (captions) and "; " (tags).
 */
export function exportRows(rows: ReadonlyArray<ExportRow>, format: ExportFormat): string {
  if (format === 'json')
    return `${JSON.stringify(
      rows.map((r) => ({
        path: r.path,
        captions: kept(r.captions).map(({ text, score, source, status }) => ({
          text,
          score,
          source,
          status,
        })),
        tags: kept(r.tags).map(({ text, confidence, source, status }) => ({
          text,
          confidence,
          source,
          status,
        })),
      })),
      null,
      2,
    )}\n`;
  if (format !== 'csv')
    throw new ArgumentError('format', `expected csv or json, got ${JSON.stringify(format)}`);
  const accepted = (items: ReadonlyArray<Described>) => items.filter((i) => i.status === 'accepted');
  const proposed = (items: ReadonlyArray<Described>) => kept(items).filter((i) => i.status !== 'accepted');
  return stringify(
    rows.map((r) => [
      r.path,
      accepted(r.captions)
        .map((c) => c.text)
        .join(' | '),
      proposed(r.captions)
        .map((c) => c.text)
        .join(' | '),
      accepted(r.tags)
        .map((t) => t.text)
        .join('; '),
      proposed(r.tags)
        .map((t) => t.text)
        .join('; '),
    ]),
    {
      header: true,
      columns: ['path', 'caption', 'other_captions', 'tags', 'proposed_tags'],
      record_delimiter: 'windows',
    },
  );
}
