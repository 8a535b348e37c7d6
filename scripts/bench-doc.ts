import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { projectRoot } from '../src-main/engine/paths.ts';

const doc = join(projectRoot, 'docs', 'BENCHMARKS.md');

/** A benchmark's log: each line printed as it comes and kept for its section of docs/BENCHMARKS.md. */
export function benchLog(): { lines: string[]; log: (line?: string) => void } {
  const lines: string[] = [];
  const log = (line = '') => {
    console.log(line);
    lines.push(line);
  };
  return { lines, log };
}

/** The q-quantile of the values (the nearest rank at or below), NaN for none. */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

/**
 * Replaces one benchmark's section of docs/BENCHMARKS.md, between its `<!-- bench:NAME:start/end -->` markers
 * (appended when absent). The file is read just before writing: every other section belongs to its own
 * command, which may have rewritten it meanwhile.
 */
export async function writeBenchSection(name: string, markdown: string): Promise<string> {
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const text = await readFile(doc, 'utf8').catch(
    () =>
      '# Benchmarks\n\nEach section is written by its `npm run bench:*` command; numbers are from the machine it names.\n',
  );
  const section = `${start}\n${markdown.trim()}\n${end}`;
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  const out =
    a >= 0 && b > a
      ? text.slice(0, a) + section + text.slice(b + end.length)
      : `${text.trimEnd()}\n\n${section}\n`;
  await mkdir(join(projectRoot, 'docs'), { recursive: true });
  await writeFile(doc, out);
  return doc;
}
