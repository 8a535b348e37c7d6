import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { projectRoot } from '../src-main/engine/paths.ts';

const doc = join(projectRoot, 'docs', 'BENCHMARKS.md');

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
