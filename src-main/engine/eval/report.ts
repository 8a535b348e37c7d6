import { rename, writeFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import sharp from 'sharp';
import { makeDir, writeError } from '../files.ts';
import type { DirectionFigures, EvalRun, ModelFigures, RetrievalFailure } from './run.ts';

export interface ReportFiles {
  html: string;
  markdown: string;
  /** Thumbnails embedded in the page. */
  thumbnails: number;
}

export interface ReportOptions {
  /** Longest side of a thumbnail in pixels (default 120). */
  thumbnailSize?: number;
}

const f1 = (x: number) => x.toFixed(1);
const signed = (x: number, digits = 1) => `${x > 0 ? '+' : x < 0 ? '−' : '±'}${Math.abs(x).toFixed(digits)}`;

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
}

/** Markdown table cells: a pipe or a newline in a caption would break the row. */
function mdCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}

const COLUMNS = ['i2t R@1', 'R@5', 'R@10', 'medr', 'mean', 't2i R@1', 'R@5', 'R@10', 'medr', 'mean', 'rsum'];

function figureCells(d: { i2t: DirectionFigures; t2i: DirectionFigures; rsum: number }, diff = false) {
  const p = diff ? (x: number) => signed(x) : f1;
  const r = diff ? (x: number) => signed(x, 0) : (x: number) => String(x);
  const dir = (m: DirectionFigures) => [p(m.r1), p(m.r5), p(m.r10), r(m.medr), p(m.meanr)];
  return [...dir(d.i2t), ...dir(d.t2i), p(d.rsum)];
}

/** Rows of the R@K table: one per model, the difference when both ran, then search's fused ranking. */
export function figureRows(run: EvalRun): Array<{ label: string; cells: string[] }> {
  const row = ([key, m]: [string, ModelFigures | undefined]) => ({
    label: key,
    cells: figureCells(m as ModelFigures),
  });
  const entries = Object.entries(run.results);
  const rows = entries.filter(([key]) => key !== 'search').map(row);
  if (run.difference) rows.push({ label: 'fne − one-layer', cells: figureCells(run.difference, true) });
  rows.push(...entries.filter(([key]) => key === 'search').map(row));
  return rows;
}

/** The aligned plain-text table the command prints. */
export function figureTable(run: EvalRun): string {
  return textTable(
    ['embedding', ...COLUMNS],
    figureRows(run).map((r) => [r.label, ...r.cells]),
  );
}

/** Columns aligned for a terminal: the first `left` (names) left, the figures right. */
export function textTable(header: string[], rows: string[][], left = 1): string {
  const widths = header.map((h, k) => Math.max(h.length, ...rows.map((row) => (row[k] as string).length)));
  const line = (cells: string[]) =>
    cells
      .map((c, k) => (k < left ? c.padEnd(widths[k] as number) : c.padStart(widths[k] as number)))
      .join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Small JPEG data URIs, one per file, so the page carries its own pictures. */
class Thumbnails {
  private readonly made = new Map<string, Promise<string | undefined>>();
  constructor(private readonly size: number) {}

  get count(): number {
    return this.made.size;
  }

  of(file: string): Promise<string | undefined> {
    let uri = this.made.get(file);
    if (!uri) {
      uri = sharp(file, { failOn: 'none' })
        .rotate()
        .resize(this.size, this.size, { fit: 'inside' })
        .jpeg({ quality: 72 })
        .toBuffer()
        .then(
          (jpeg) => `data:image/jpeg;base64,${jpeg.toString('base64')}`,
          () => undefined,
        );
      this.made.set(file, uri);
    }
    return uri;
  }
}

const MODEL_COLOURS: Record<string, string> = { fne: '#2f6fb0', 'one-layer': '#e08a2c' };
const colourOf = (key: string, k: number) => MODEL_COLOURS[key] ?? ['#5a9e4b', '#8b5cb8', '#b0413e'][k % 3];

/** Grouped bars of R@1/5/10 both directions, one bar per model, as inline SVG. */
function barChart(run: EvalRun): string {
  const models = Object.entries(run.results) as Array<[string, ModelFigures]>;
  const groups = [
    ['i2t R@1', (m: ModelFigures) => m.i2t.r1],
    ['i2t R@5', (m: ModelFigures) => m.i2t.r5],
    ['i2t R@10', (m: ModelFigures) => m.i2t.r10],
    ['t2i R@1', (m: ModelFigures) => m.t2i.r1],
    ['t2i R@5', (m: ModelFigures) => m.t2i.r5],
    ['t2i R@10', (m: ModelFigures) => m.t2i.r10],
  ] as const;
  const bar = 26;
  const gap = 22;
  const groupWidth = models.length * bar + gap;
  const height = 220;
  const left = 36;
  const width = left + groups.length * groupWidth + 10;
  const y = (v: number) => 10 + (height - 10) * (1 - v / 100);
  const parts: string[] = [];
  for (const v of [0, 25, 50, 75, 100])
    parts.push(
      `<line x1="${left}" x2="${width}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11">${v}</text>`,
    );
  for (const [g, [label, value]] of groups.entries()) {
    const x0 = left + gap / 2 + g * groupWidth;
    for (const [k, [key, m]] of models.entries()) {
      const v = value(m);
      parts.push(
        `<rect x="${x0 + k * bar}" y="${y(v)}" width="${bar - 3}" height="${y(0) - y(v)}" fill="${colourOf(key, k)}"><title>${escapeHtml(key)} ${label}: ${f1(v)} %</title></rect>`,
        `<text x="${x0 + k * bar + (bar - 3) / 2}" y="${y(v) - 3}" text-anchor="middle" font-size="10">${f1(v)}</text>`,
      );
    }
    parts.push(
      `<text x="${x0 + (models.length * bar) / 2}" y="${height + 16}" text-anchor="middle" font-size="12">${label}</text>`,
    );
  }
  const legend = models
    .map(
      ([key], k) =>
        `<span class="key"><span class="swatch" style="background:${colourOf(key, k)}"></span>${escapeHtml(key)}</span>`,
    )
    .join(' ');
  return `<figure><svg role="img" aria-label="R@K bar chart" width="${width}" height="${height + 24}" viewBox="0 0 ${width} ${height + 24}">${parts.join('')}</svg><figcaption>Recall at K, percent (higher is better). ${legend}</figcaption></figure>`;
}

async function failureHtml(
  failures: RetrievalFailure[],
  thumbs: Thumbnails,
  images: number,
  base: string,
): Promise<string> {
  if (failures.length === 0) return '<p>Every caption found its photo first: no failures to show.</p>';
  const img = async (file: string, label: string, cls: string) => {
    const uri = await thumbs.of(file);
    const name = escapeHtml(relative(base, file) || basename(file));
    return `<figure class="${cls}">${uri ? `<img class="thumb" src="${uri}" alt="${name}">` : '<div class="thumb missing">no preview</div>'}<figcaption>${label}<br><span class="file">${name}</span></figcaption></figure>`;
  };
  const rows: string[] = [];
  for (const [k, f] of failures.entries()) {
    const above = await Promise.all(
      f.above.map((a, j) => img(a.file, `#${j + 1} · ${a.score.toFixed(3)}`, 'above')),
    );
    const more = f.rank - 1 - f.above.length;
    rows.push(
      `<tr><td class="n">${k + 1}</td><td class="caption">${escapeHtml(f.text)}<br><span class="file">${escapeHtml(f.where)}</span><br>ranked <b>${f.rank}</b> of ${images}</td><td>${await img(f.expected.file, `expected · ${f.expected.score.toFixed(3)}`, 'expected')}</td><td class="row">${above.join('')}${more > 0 ? `<span class="more">+${more} more</span>` : ''}</td></tr>`,
    );
  }
  return `<table class="failures"><thead><tr><th>#</th><th>caption</th><th>expected photo</th><th>ranked above it (best first, score)</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function layersHtml(run: EvalRun): string {
  const parts: string[] = [];
  for (const [key, d] of Object.entries(run.details)) {
    if (!d?.layers) continue;
    const { layers } = d;
    const max = Math.max(...layers.blocks.map((b) => Math.abs(b.contribution)), 1e-9);
    const bars = layers.blocks
      .map(
        (b) =>
          `<tr><td>${escapeHtml(b.block)}</td><td class="num">${b.contribution.toFixed(4)}</td><td class="num">${((100 * b.contribution) / layers.score).toFixed(1)} %</td><td><div class="hbar${b.contribution < 0 ? ' neg' : ''}" style="width:${(200 * Math.abs(b.contribution)) / max}px"></div></td></tr>`,
      )
      .join('');
    parts.push(
      `<h3>${escapeHtml(key)}</h3><p>Mean over ${layers.pairs} correct top-1 matches (of ${d.correctTop1}); mean score ${layers.score.toFixed(4)}. Each block's share of the score: early blocks carry colour and texture, late ones parts and objects.</p><table class="layers"><thead><tr><th>block</th><th>contribution</th><th>share</th><th></th></tr></thead><tbody>${bars}</tbody></table>`,
    );
  }
  return parts.length > 0
    ? parts.join('')
    : '<p>Not computed: no model here splits its score by CNN layer (or no caption found its photo first).</p>';
}

function skippedHtml(run: EvalRun): string {
  const items: string[] = [];
  for (const s of run.skipped.images)
    items.push(
      `<li>photo <span class="file">${escapeHtml(s.file)}</span>: ${escapeHtml(s.code)}: ${escapeHtml(s.reason)}</li>`,
    );
  for (const s of run.skipped.captions)
    items.push(
      `<li>caption ${escapeHtml(JSON.stringify(s.text))} (${escapeHtml(s.where)}): ${escapeHtml(s.reason)}</li>`,
    );
  for (const file of run.skipped.uncaptioned)
    items.push(`<li>photo <span class="file">${escapeHtml(file)}</span>: no usable caption</li>`);
  for (const s of run.unknownOnly)
    items.push(
      `<li>caption ${escapeHtml(JSON.stringify(s.text))} (${escapeHtml(s.where)}): kept, but ${escapeHtml(s.reason)}</li>`,
    );
  return items.length > 0 ? `<ul class="skipped">${items.join('')}</ul>` : '<p>Nothing was left out.</p>';
}

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse}th,td{padding:4px 8px;border-bottom:1px solid #e4e4e4;vertical-align:top}
table.figures td,table.figures th{text-align:right}table.figures td:first-child,table.figures th:first-child{text-align:left}
tr.diff td{font-weight:600}
.file{color:#777;font-size:11px;word-break:break-all}
.thumb{display:block;max-width:120px;max-height:120px;border-radius:3px}
.thumb.missing{width:120px;height:80px;background:#eee;text-align:center;line-height:80px;color:#999}
figure{margin:0 6px 0 0;display:inline-block;vertical-align:top}
figure.above,figure.expected{max-width:124px}
figure.expected .thumb{outline:3px solid #3a8f3a}
figcaption{font-size:11px}
td.row{white-space:normal}td.caption{max-width:260px}
.more{display:inline-block;vertical-align:top;margin-top:50px;color:#777}
.key{margin-left:1em}.swatch{display:inline-block;width:10px;height:10px;margin-right:4px}
.hbar{height:10px;background:#2f6fb0}.hbar.neg{background:#b0413e}
.num{text-align:right;font-variant-numeric:tabular-nums}
`;

/** The report as a self-contained HTML page (thumbnails as data URIs, the chart as SVG). */
async function reportHtml(
  run: EvalRun,
  options: ReportOptions = {},
): Promise<{ html: string; thumbnails: number }> {
  const thumbs = new Thumbnails(options.thumbnailSize ?? 120);
  const base = run.format === 'flickr8k' ? run.dataset : join(run.dataset, '..');
  const rows = figureRows(run)
    .map(
      (r) =>
        `<tr${r.label.includes('−') ? ' class="diff"' : ''}><td>${escapeHtml(r.label)}</td>${r.cells.map((c) => `<td>${c}</td>`).join('')}</tr>`,
    )
    .join('');
  const failureSections: string[] = [];
  for (const [key, d] of Object.entries(run.details)) {
    if (!d) continue;
    failureSections.push(
      `<h3>${escapeHtml(key)}</h3>${await failureHtml(d.failures, thumbs, run.images, base)}`,
    );
  }
  const title = `Sagasu evaluation: ${basename(run.dataset)}`;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body>
<h1>${escapeHtml(title)}</h1>
<p>${escapeHtml(run.dataset)} (${run.format}${run.split ? `, ${run.split} split` : ''}, captions in ${run.lang === 'ja' ? 'Japanese' : 'English'}): <b>${run.images}</b> photos and <b>${run.captions}</b> captions ranked; ${run.skipped.images.length} photos failed to decode, ${run.skipped.captions.length} captions had no words, ${run.skipped.uncaptioned.length} photos had no usable caption.</p>
<h2>How often the right photo comes first</h2>
<p><b>t2i</b> (retrieval): for each caption, the rank of its photo among all photos. <b>i2t</b> (annotation): for each photo, the rank of its best caption among all captions. R@K: percent ranked in the top K; medr and mean: median and mean rank (1 is best); rsum: the six R@K added. Ties count against the right answer.</p>
<table class="figures" id="figures"><thead><tr><th>embedding</th>${COLUMNS.map((c) => `<th>${c}</th>`).join('')}</tr></thead><tbody>${rows}</tbody></table>
${barChart(run)}
${run.notes.length > 0 ? `<ul>${run.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>` : ''}
<h2>The worst retrieval failures</h2>
<p>The captions whose photo ranked lowest, with the photos ranked above it: whether the caption or the model is at fault is usually plain to see.</p>
${failureSections.join('\n')}
<h2>Why the right photo matched (per CNN block)</h2>
${layersHtml(run)}
<h2>Left out</h2>
${skippedHtml(run)}
<p class="file">Features: ${run.features.computed} photos through the CNN, ${run.features.reused} from the cache (${escapeHtml(run.features.cacheDir)}); ${run.seconds.total.toFixed(1)} s in all.</p>
</body></html>
`;
  return { html, thumbnails: thumbs.count };
}

/** The same figures as Markdown. */
function reportMarkdown(run: EvalRun): string {
  const header = ['embedding', ...COLUMNS];
  const lines = [
    `# Sagasu evaluation: ${basename(run.dataset)}`,
    '',
    `${run.dataset} (${run.format}${run.split ? `, ${run.split} split` : ''}, ${run.lang}): ${run.images} photos, ${run.captions} captions ranked; ${run.skipped.images.length} photos failed to decode, ${run.skipped.captions.length} captions had no words, ${run.skipped.uncaptioned.length} photos had no usable caption.`,
    '',
    `| ${header.join(' | ')} |`,
    `|${header.map((_, k) => (k === 0 ? ':---' : '---:')).join('|')}|`,
    ...figureRows(run).map((r) => `| ${[r.label, ...r.cells].join(' | ')} |`),
    '',
    ...run.notes.map((n) => `- ${n}`),
  ];
  for (const [key, d] of Object.entries(run.details)) {
    if (!d) continue;
    lines.push(
      '',
      `## Worst retrieval failures: ${key}`,
      '',
      '| # | caption | rank | expected photo | ranked above it |',
      '|---:|:---|---:|:---|:---|',
    );
    for (const [k, f] of d.failures.entries())
      lines.push(
        `| ${k + 1} | ${mdCell(f.text)} | ${f.rank} | ${basename(f.expected.file)} | ${f.above.map((a) => basename(a.file)).join(', ')} |`,
      );
    const shares = d.layers;
    if (shares) {
      lines.push(
        '',
        `## Per-block contribution: ${key}`,
        '',
        `Mean over ${shares.pairs} correct top-1 matches (of ${d.correctTop1}); mean score ${shares.score.toFixed(4)}.`,
        '',
        '| block | contribution | share |',
        '|:---|---:|---:|',
        ...shares.blocks.map(
          (b) =>
            `| ${b.block} | ${b.contribution.toFixed(4)} | ${((100 * b.contribution) / shares.score).toFixed(1)} % |`,
        ),
      );
    }
  }
  const left = [
    ...run.skipped.images.map((s) => `- photo ${s.file}: ${s.code}: ${s.reason}`),
    ...run.skipped.captions.map((s) => `- caption ${JSON.stringify(s.text)} (${s.where}): ${s.reason}`),
    ...run.skipped.uncaptioned.map((file) => `- photo ${file}: no usable caption`),
  ];
  if (left.length > 0) lines.push('', '## Left out', '', ...left);
  return `${lines.join('\n')}\n`;
}

/** Writes index.html and report.md into `dir` (created if needed), each renamed into place when complete. */
export async function writeEvalReport(
  run: EvalRun,
  dir: string,
  options: ReportOptions = {},
): Promise<ReportFiles> {
  await makeDir(dir);
  const { html, thumbnails } = await reportHtml(run, options);
  const htmlFile = join(dir, 'index.html');
  const mdFile = join(dir, 'report.md');
  for (const [file, text] of [
    [htmlFile, html],
    [mdFile, reportMarkdown(run)],
  ] as const) {
    try {
      await writeFile(`${file}.tmp`, text);
      await rename(`${file}.tmp`, file);
    } catch (error) {
      throw writeError(file, error);
    }
  }
  return { html: htmlFile, markdown: mdFile, thumbnails };
}
