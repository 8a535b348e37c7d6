import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { type EvalRun, figureRows, runEval, writeEvalReport } from '../src-main/engine/eval/index.ts';
import { type TieSets, writeTieSets } from './helpers/eval-sets.ts';
import { cnnBuilt, skipNote } from './helpers/shared.ts';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const chromiumNote = hasChromium
  ? ''
  : ` [skipped: ${CHROMIUM} is absent; the project's setup installs Debian's chromium]`;

describe.skipIf(!cnnBuilt)(`the sagasu eval report${skipNote({ cnn: true })}`, () => {
  let sets: TieSets;
  let run: EvalRun;
  let reportDir: string;
  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sagasu-eval-report-'));
    sets = await writeTieSets(dir);
    run = await runEval(sets.csv, { cacheRoot: join(dir, 'cache') });
    reportDir = join(dir, 'report');
    await writeEvalReport(run, reportDir);
  });

  it('writes the same figures as Markdown, with the failures and what was left out', async () => {
    const md = await readFile(join(reportDir, 'report.md'), 'utf8');
    for (const row of figureRows(run)) expect(md).toContain(`| ${[row.label, ...row.cells].join(' | ')} |`);
    expect(md).toContain('## Worst retrieval failures: fne');
    expect(md).toContain('## Worst retrieval failures: one-layer');
    expect(md).toMatch(/photo .*d\.jpg: (unsupported-format|corrupt)/);
    expect(md).toContain(`caption "!!!" (${sets.csv}:9): no words to encode`);
  });

  it('is self-contained: no file, script or network reference, thumbnails inlined', async () => {
    const html = await readFile(join(reportDir, 'index.html'), 'utf8');
    expect(html).not.toMatch(/<script|<link|src="(?!data:)/);
    expect(html).toMatch(/src="data:image\/jpeg;base64,/);
  });

  it.skipIf(!hasChromium)(
    `opens in Chromium with the R@K table, the chart and thumbnails${chromiumNote}`,
    async () => {
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu'],
      });
      try {
        const page = await browser.newPage();
        await page.goto(pathToFileURL(join(reportDir, 'index.html')).href);
        const table = await page.$$eval('table#figures tbody tr', (rows) =>
          rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent?.trim() ?? '')),
        );
        expect(table).toEqual(figureRows(run).map((r) => [r.label, ...r.cells]));
        // Six R@K bars for each of fne, one-layer and search.
        expect(await page.locator('svg[aria-label="R@K bar chart"] rect').count()).toBe(18);
        // Four failures per model, each with the expected photo and the two identical ones above it.
        const thumbs = await page.$$eval('img.thumb', (imgs) =>
          imgs.map((img) => {
            const { naturalWidth: w, naturalHeight: h } = img as unknown as {
              naturalWidth: number;
              naturalHeight: number;
            };
            return { w, h };
          }),
        );
        expect(thumbs).toHaveLength(2 * 4 * 3);
        for (const t of thumbs) expect(Math.max(t.w, t.h)).toBe(120);
      } finally {
        await browser.close();
      }
    },
  );
});
