import { SingleBar } from 'cli-progress';
import { type Command, Option } from 'commander';
import {
  EMBEDDING_CHOICES,
  type EmbeddingChoice,
  type EvalLang,
  type EvalRun,
  evalSummary,
  figureTable,
  runEval,
  writeEvalReport,
} from '../engine/eval/index.ts';

interface EvalCommandOptions {
  dataset: string;
  model?: string;
  embedding: EmbeddingChoice;
  lang: EvalLang;
  split: 'test' | 'val' | 'train';
  images?: string;
  json?: boolean;
  report?: string;
  cache?: string;
}

/** How many skipped items the human output names before it only counts them. */
const LIST_AT_MOST = 10;

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description(
      'R@1/5/10, median and mean rank of the FNE and one-layer embeddings on your own captioned photos (annotation and retrieval, ties counted against the right answer)',
    )
    .requiredOption(
      '--dataset <path>',
      'a Flickr8k-style folder, a COCO captions .json (with --images), or a .csv/.tsv with the columns image and caption',
    )
    .option('--model <dir>', 'one joint model, or a folder of them (default: models/joint)')
    .addOption(
      new Option('--embedding <which>', 'which embedding to evaluate')
        .choices(EMBEDDING_CHOICES)
        .default('both'),
    )
    .addOption(
      new Option('--lang <lang>', 'the sentence encoder (auto: the script most captions are written in)')
        .choices(['en', 'ja', 'auto'])
        .default('auto'),
    )
    .addOption(
      new Option('--split <split>', 'Flickr8k folders: which split')
        .choices(['test', 'val', 'train'])
        .default('test'),
    )
    .option('--images <dir>', 'COCO captions: the folder holding the images')
    .option('--json', 'one JSON object on stdout')
    .option('--report <dir>', 'write index.html (self-contained) and report.md there')
    .option('--cache <dir>', 'where image features are cached (default .cache/eval-vectors)')
    .action(async (options: EvalCommandOptions) => {
      // stderr, so --json output stays one JSON document.
      const log = (line: string) => console.error(line);
      const bar = new SingleBar({
        format: 'eval: CNN [{bar}] {value}/{total} photos | {eta}s left',
        etaBuffer: 100,
        noTTYOutput: false,
        stream: process.stderr,
      });
      let started = false;
      const run = await runEval(options.dataset, {
        ...(options.model ? { model: options.model } : {}),
        embedding: options.embedding,
        lang: options.lang,
        split: options.split,
        ...(options.images ? { images: options.images } : {}),
        ...(options.cache ? { cacheRoot: options.cache } : {}),
        // Only the report shows the layer split, and it is the costliest step after the CNN.
        ...(options.report ? {} : { explain: false as const }),
        log,
        onProgress: (done, total) => {
          if (!started) {
            bar.start(total, 0);
            started = true;
          }
          bar.update(done);
          if (done === total) bar.stop();
        },
      });
      if (started) bar.stop();
      // The figures first: a report folder that cannot be written must not lose what was computed.
      printRun(run, options.json === true);
      if (options.report) {
        const report = await writeEvalReport(run, options.report);
        log(`eval: report in ${report.html} and ${report.markdown} (${report.thumbnails} thumbnails)`);
      }
    });
}

function printRun(run: EvalRun, json: boolean): void {
  if (json) {
    console.log(JSON.stringify(evalSummary(run), null, 2));
    return;
  }
  console.log(
    `${run.dataset} (${run.format}${run.split ? `, ${run.split} split` : ''}, ${run.lang}): ${run.images} photos, ${run.captions} captions`,
  );
  console.log(figureTable(run));
  for (const note of run.notes) console.log(`note: ${note}`);
  const named = [
    ...run.skipped.images.map((s) => `photo ${s.file}: ${s.code}: ${s.reason}`),
    ...run.skipped.captions.map((s) => `caption ${JSON.stringify(s.text)} (${s.where}): ${s.reason}`),
    ...run.skipped.uncaptioned.map((file) => `photo ${file}: no usable caption`),
  ];
  for (const line of named.slice(0, LIST_AT_MOST)) console.log(`  left out: ${line}`);
  if (named.length > LIST_AT_MOST)
    console.log(`  … and ${named.length - LIST_AT_MOST} more (--json lists all)`);
  console.log(
    `features: ${run.features.computed} photos through the CNN, ${run.features.reused} from the cache; ${run.seconds.total.toFixed(1)} s in all (${run.seconds.cnn.toFixed(1)} s CNN)`,
  );
}
