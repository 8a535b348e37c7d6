import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { text } from 'node:stream/consumers';
import type { Command } from 'commander';
import { CNN_MODES, type CnnMode, DEFAULT_CNN_MODE, labelsPath, loadLabels } from '../engine/cnn/index.ts';
import { ArgumentError, SagasuError } from '../engine/errors.ts';
import { FneExtractor, ternaryShares } from '../engine/fne/index.ts';
import { walk } from '../engine/library/index.ts';

interface FeaturesOptions {
  json?: boolean;
  mode: CnnMode;
  batch: string;
  filesFrom?: string;
}

/** One path a line (or NUL-separated, as `find -print0` writes), from a file or stdin (`-`). */
async function readList(from: string): Promise<string[]> {
  let list: string;
  try {
    list = from === '-' ? await text(process.stdin) : await readFile(from, 'utf8');
  } catch (error) {
    throw new SagasuError(
      'not-found',
      from,
      `cannot read the file list: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  return list.split(list.includes('\0') ? '\0' : /\r?\n/).filter((line) => line.trim() !== '');
}

/** Files as given, folders as the photos under them (as `sagasu index` finds them), in path order. */
async function photoFiles(args: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  for (const arg of args) {
    const info = await stat(arg).catch(() => null);
    if (!info?.isDirectory()) {
      files.push(arg); // a file, or a path the extractor reports as missing
      continue;
    }
    const found = await walk(resolve(arg));
    for (const dir of found.unreadable) console.error(`${dir}: error: the folder cannot be listed`);
    files.push(...found.files.map((f) => f.path).sort());
  }
  return files;
}

export interface FeaturesReport {
  file: string;
  width?: number;
  height?: number;
  fneDim?: number;
  shares?: { negative: number; zero: number; positive: number };
  top5?: { label: string; index: number; probability: number }[];
  error?: { code: string; reason: string };
}

function top5(probs: Float32Array, labels: string[]): NonNullable<FeaturesReport['top5']> {
  return [...probs.keys()]
    .sort((a, b) => (probs[b] as number) - (probs[a] as number) || a - b)
    .slice(0, 5)
    .map((index) => ({ label: labels[index] ?? String(index), index, probability: probs[index] as number }));
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export function registerFeatures(program: Command): void {
  program
    .command('features')
    .description('show what the network sees in photos: FNE size, share of -1/0/+1, top-5 ImageNet labels')
    .argument('[image...]', 'photo files or folders of photos')
    .option('--files-from <file>', 'also the photos listed in a file, one a line (- reads stdin)')
    .option('--json', 'one JSON array on stdout')
    .option('--mode <mode>', `CNN mode (${CNN_MODES.join(' or ')})`, DEFAULT_CNN_MODE)
    .option('--batch <n>', 'images per CNN batch', '8')
    .action(async (given: string[], options: FeaturesOptions) => {
      if (!CNN_MODES.includes(options.mode))
        program.error(`--mode: expected ${CNN_MODES.join(' or ')}, got "${options.mode}"`);
      const batchSize = Number(options.batch);
      if (!Number.isInteger(batchSize) || batchSize < 1)
        program.error(`--batch: expected a positive integer, got "${options.batch}"`);
      const images = await photoFiles([
        ...given,
        ...(options.filesFrom ? await readList(options.filesFrom) : []),
      ]);
      if (images.length === 0)
        throw new ArgumentError(
          'features',
          given.length || options.filesFrom
            ? 'no photos found in what was given'
            : 'give photo files, folders of photos, or --files-from FILE (- for stdin)',
        );
      const labels = await loadLabels(labelsPath);
      // stderr, so --json output stays one JSON document.
      const extractor = await FneExtractor.open({ mode: options.mode, log: (line) => console.error(line) });
      const reports: FeaturesReport[] = [];
      for await (const result of extractor.extract(images, { batchSize })) {
        const report: FeaturesReport = result.ok
          ? {
              file: result.features.file,
              width: result.features.width,
              height: result.features.height,
              fneDim: result.features.fne?.length ?? 0,
              shares: ternaryShares(result.features.fne ?? new Int8Array()),
              top5: top5(result.features.probs, labels),
            }
          : { file: result.file, error: { code: result.error.code, reason: result.error.reason } };
        reports.push(report);
        if (options.json) continue;
        if (report.error) {
          console.error(`${report.file}: error (${report.error.code}): ${report.error.reason}`);
          continue;
        }
        const s = report.shares as NonNullable<FeaturesReport['shares']>;
        console.log(`${report.file}  ${report.width}x${report.height}`);
        console.log(
          `  FNE ${report.fneDim}-d: -1 ${pct(s.negative)}  0 ${pct(s.zero)}  +1 ${pct(s.positive)}`,
        );
        console.log(
          `  top-5: ${report.top5?.map((t) => `${t.label} ${t.probability.toFixed(3)}`).join(', ')}`,
        );
      }
      await extractor.close();
      if (options.json) console.log(JSON.stringify(reports, null, 2));
      if (reports.some((r) => r.error)) process.exitCode = 1;
    });
}
