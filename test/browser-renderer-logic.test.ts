import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { get } from 'svelte/store';
import { addMessages, format, init, locale } from 'svelte-i18n';
import { beforeAll, describe, expect, it } from 'vitest';
import { methods } from '../src-main/contract/index.ts';
import { projectRoot } from '../src-main/engine/paths.ts';
import { blockBars, dominantStage } from '../src-renderer/lib/chart.ts';
import {
  baseName,
  emptyFilters,
  formatDuration,
  progressFraction,
  toSearchFilters,
} from '../src-renderer/lib/format.ts';
import { columnsFor, moveSelection, pagesForRows, tileSize } from '../src-renderer/lib/grid.ts';
import {
  asClientError,
  ClientError,
  callPath,
  decodeResponse,
  electronMediaUrl,
  errorKey,
  eventsUrl,
  hashWithoutToken,
  httpMediaPath,
  tokenFromHash,
} from '../src-renderer/lib/protocol.ts';

const rendererDir = join(projectRoot, 'src-renderer');
type Catalogue = { [key: string]: string | Catalogue };
const catalogue = (lang: string): Catalogue =>
  JSON.parse(readFileSync(join(rendererDir, 'i18n', `${lang}.json`), 'utf8'));

function flatten(c: Catalogue, prefix = ''): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(c)) {
    if (typeof v === 'string') out.set(`${prefix}${k}`, v);
    else for (const [kk, vv] of flatten(v, `${prefix}${k}.`)) out.set(kk, vv);
  }
  return out;
}

function svelteSources(dir = rendererDir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? svelteSources(join(dir, e.name))
      : e.name.endsWith('.svelte')
        ? [readFileSync(join(dir, e.name), 'utf8')]
        : [],
  );
}

describe('message catalogues (English and Japanese)', () => {
  const en = flatten(catalogue('en'));
  const ja = flatten(catalogue('ja'));

  it('have the same keys', () => {
    expect([...ja.keys()].sort()).toEqual([...en.keys()].sort());
  });

  it('hold every key the components use, and Japanese is really translated', () => {
    const used = new Set<string>();
    for (const source of svelteSources()) {
      for (const m of source.matchAll(/\$_\(\s*'([\w.-]+)'/g)) used.add(m[1] as string);
      // Keys chosen at run time: `index.state.${state}` and the like, expanded over their known values.
      for (const m of source.matchAll(/\$_\(\s*`([\w.]+)\.\$\{/g)) {
        const prefix = `${m[1]}.`;
        expect(
          [...en.keys()].some((k) => k.startsWith(prefix)),
          prefix,
        ).toBe(true);
      }
      for (const m of source.matchAll(/'((?:search|error|review|photo)\.[\w-]+)'/g)) used.add(m[1] as string);
    }
    expect(used.size).toBeGreaterThan(60);
    for (const key of used) {
      expect(en.has(key), `en.json lacks ${key}`).toBe(true);
      expect(ja.has(key), `ja.json lacks ${key}`).toBe(true);
    }
    for (const state of ['idle', 'walking', 'running', 'paused', 'cancelled', 'done'])
      expect(en.has(`index.state.${state}`) && ja.has(`index.state.${state}`)).toBe(true);
    for (const stage of ['early', 'middle', 'late']) expect(ja.has(`explain.stage.${stage}`)).toBe(true);
    const kana = /[\u3040-\u30ff\u4e00-\u9fff]/;
    const untranslated = [...ja].filter(
      ([k, v]) => !kana.test(v) && v !== en.get(k) && !/^[{}\w\s/.…]*$/.test(v),
    );
    expect(untranslated).toEqual([]);
    const japanese = [...ja.values()].filter((v) => kana.test(v)).length;
    expect(japanese / ja.size).toBeGreaterThan(0.85);
  });

  beforeAll(() => {
    addMessages('en', catalogue('en'));
    addMessages('ja', catalogue('ja'));
    init({ fallbackLocale: 'en', initialLocale: 'en' });
  });

  it('format every message in both languages (the ICU syntax is valid)', () => {
    const values = {
      count: 2,
      total: 10,
      done: 3,
      indexed: 5,
      pending: 4,
      failed: 1,
      rate: '1.5',
      eta: '3 min',
    };
    for (const lang of ['en', 'ja']) {
      locale.set(lang);
      const t = get(format);
      for (const key of en.keys()) {
        const text = t(key, {
          values: {
            ...values,
            name: 'x.jpg',
            ms: 12,
            score: '0.5',
            query: 'q',
            words: 'w',
            dim: 512,
            reason: 'r',
            path: '/p',
            subject: 's',
            message: 'm',
            backbone: 'resnet50',
            languages: 'en + ja',
            chosen: 'fne',
            active: 'one-layer',
          },
        });
        expect(text, `${lang}:${key}`).not.toBe(key);
        expect(text).not.toMatch(/\{\w+\}/);
      }
    }
    locale.set('en');
    expect(get(format)('search.count', { values: { count: 1 } })).toBe('1 photo');
    expect(get(format)('search.count', { values: { count: 1234 } })).toBe('1,234 photos');
    locale.set('ja');
    expect(get(format)('search.count', { values: { count: 0 } })).toBe('該当する写真はありません');
  });
});

describe('the browser door protocol', () => {
  it('reads the token from the hash and removes it, keeping other parameters', () => {
    expect(tokenFromHash('#token=abcDEF012_-xyz')).toBe('abcDEF012_-xyz');
    expect(tokenFromHash('#view=library&token=abcdefgh12')).toBe('abcdefgh12');
    expect(tokenFromHash('#token=')).toBeNull();
    expect(tokenFromHash('#token=<script>')).toBeNull();
    expect(tokenFromHash('')).toBeNull();
    expect(hashWithoutToken('#token=abcdefgh12')).toBe('');
    expect(hashWithoutToken('#view=library&token=abcdefgh12')).toBe('#view=library');
  });

  it('builds media URLs from ids only, never paths', () => {
    expect(httpMediaPath(42, 'thumb', 'tok en', 256)).toBe('/media/thumb/42?size=256&token=tok+en');
    expect(httpMediaPath(7, 'full', 'abc')).toBe('/media/full/7?token=abc');
    expect(electronMediaUrl(42, 'thumb', 255.6)).toBe('sagasu-media://thumb/42?size=256');
    expect(electronMediaUrl(3, 'full', 512)).toBe('sagasu-media://full/3');
    expect(eventsUrl({ protocol: 'http:', host: '127.0.0.1:5000' }, 'a b')).toBe(
      'ws://127.0.0.1:5000/api/events?token=a%20b',
    );
  });

  it('calls every contract method at /api/call/<method>', () => {
    for (const method of Object.keys(methods) as Array<keyof typeof methods>)
      expect(callPath(method)).toBe(`/api/call/${method}`);
  });

  it('decodes results and turns refusals into errors carrying the server words', () => {
    expect(decodeResponse(200, { ok: true, result: { a: 1 } })).toEqual({ a: 1 });
    const refused = () =>
      decodeResponse(400, {
        ok: false,
        error: { code: 'invalid-argument', subject: 'search.k', message: 'search.k: too big' },
      });
    expect(refused).toThrow(ClientError);
    try {
      refused();
    } catch (error) {
      const e = error as ClientError;
      expect([e.code, e.subject, e.status, e.message]).toEqual([
        'invalid-argument',
        'search.k',
        400,
        'search.k: too big',
      ]);
      expect(errorKey(e)).toBe('error.invalid-argument');
    }
    try {
      decodeResponse(502, null);
    } catch (error) {
      expect((error as ClientError).code).toBe('bad-response');
    }
    try {
      decodeResponse(401, '<html>');
    } catch (error) {
      expect(errorKey(error as ClientError)).toBe('error.unauthorized');
    }
    expect(asClientError(new TypeError('Failed to fetch')).code).toBe('unreachable');
    // A code from a newer server: still shown, in the server's words.
    try {
      decodeResponse(400, { ok: false, error: { code: 'something-new', subject: 's', message: 'm' } });
    } catch (error) {
      expect(errorKey(error as ClientError)).toBe('error.other');
    }
  });
});

describe('grid layout and keyboard navigation', () => {
  it('fits columns to the width and tiles to the columns', () => {
    expect(columnsFor(0)).toBe(1);
    expect(columnsFor(1280 - 40)).toBe(6);
    expect(columnsFor(180)).toBe(1);
    expect(columnsFor(368)).toBe(2);
    const cols = columnsFor(1000);
    expect(tileSize(1000, cols) * cols + 8 * (cols - 1)).toBeLessThanOrEqual(1000);
  });

  it('moves by tiles and rows and stops at the edges', () => {
    expect(moveSelection(-1, 'ArrowRight', 5, 100)).toBe(0);
    expect(moveSelection(0, 'ArrowLeft', 5, 100)).toBe(0);
    expect(moveSelection(3, 'ArrowDown', 5, 100)).toBe(8);
    expect(moveSelection(97, 'ArrowDown', 5, 100)).toBe(97);
    expect(moveSelection(2, 'ArrowUp', 5, 100)).toBe(2);
    expect(moveSelection(99, 'ArrowRight', 5, 100)).toBe(99);
    expect(moveSelection(50, 'End', 5, 100_000)).toBe(99_999);
    expect(moveSelection(50, 'Home', 5, 100_000)).toBe(0);
    expect(moveSelection(50, 'PageDown', 5, 100_000, 4)).toBe(70);
    expect(moveSelection(5, 'ArrowLeft', 5, 0)).toBe(-1);
  });

  it('asks only for the pages the visible rows need', () => {
    expect(pagesForRows(0, 4, 6, 200, 100_000)).toEqual([0]);
    expect(pagesForRows(30, 40, 6, 200, 100_000)).toEqual([0, 1]);
    expect(pagesForRows(16_000, 16_010, 6, 200, 100_000)).toEqual([480]);
    expect(pagesForRows(33, 34, 6, 200, 100_000)).toEqual([0, 1]);
    expect(pagesForRows(16_660, 16_700, 6, 200, 100_000)).toEqual([499]);
    expect(pagesForRows(0, 10, 6, 200, 0)).toEqual([]);
    expect(pagesForRows(10, 20, 6, 200, 30)).toEqual([]);
  });
});

describe('formats and filters', () => {
  it('writes durations in the UI language', () => {
    expect(formatDuration(null, 'en')).toBe('');
    expect(formatDuration(42, 'en')).toBe('42 sec');
    expect(formatDuration(3900, 'en')).toBe('1 hr 5 min');
    expect(formatDuration(600, 'ja')).toBe('10 分');
  });

  it('sends only the filters that are set, and only the contract file types', () => {
    expect(toSearchFilters(emptyFilters)).toEqual({});
    expect(toSearchFilters({ rootId: '3', from: '2020-01-01', to: '', type: 'png' })).toEqual({
      rootId: 3,
      from: '2020-01-01',
      types: ['png'],
    });
    expect(toSearchFilters({ rootId: 'x', from: '2020-1-1', to: '2021-12-31', type: 'exe' })).toEqual({
      to: '2021-12-31',
    });
    expect(
      methods.search.safeParse({ query: 'q', filters: toSearchFilters({ ...emptyFilters, type: 'gif' }) })
        .success,
    ).toBe(true);
  });

  it('measures progress and names files from either OS', () => {
    expect(progressFraction({ done: 5, failed: 0, total: 10 })).toBe(0.5);
    expect(progressFraction({ done: 0, failed: 0, total: 0 })).toBe(0);
    expect(baseName('/a/b/dog.jpg')).toBe('dog.jpg');
    expect(baseName('C:\\Photos\\cat.png')).toBe('cat.png');
  });
});

describe('why-this-match chart', () => {
  it('orders blocks stem → head and scales bars to the largest contribution', () => {
    const bars = blockBars({
      blocks: [
        { block: 'head', contribution: 0.1 },
        { block: 'block_10', contribution: -0.05 },
        { block: 'stem', contribution: 0.02 },
        { block: 'block_2', contribution: 0.2 },
      ],
    });
    expect(bars.map((b) => b.block)).toEqual(['stem', 'block_2', 'block_10', 'head']);
    const expected = [0.1, 1, 0.25, 0.5];
    for (const [i, b] of bars.entries()) expect(b.magnitude).toBeCloseTo(expected[i] as number, 12);
    expect(bars[2]?.positive).toBe(false);
    expect(dominantStage(bars)).toBe('early');
    expect(dominantStage(blockBars({ blocks: [{ block: 'stem', contribution: -1 }] }))).toBeNull();
  });
});
