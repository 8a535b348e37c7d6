import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { SagasuError } from '../engine/errors.ts';
import {
  DEMO_ATTRIBUTION,
  defaultPreparedDir,
  defaultSearchSetup,
  type EvalSplit,
  evaluateJointModel,
  type JointEvaluation,
  loadPreparedProbs,
  loadPreparedSplit,
  type PreparedSplit,
  runEval,
  textTable,
} from '../engine/eval/index.ts';
import type { RetrievalMetrics } from '../engine/eval/protocol.ts';
import { sha256Hex } from '../engine/files.ts';
import { JointModel, jointModelsDir, listJointModels } from '../engine/joint/index.ts';
import { VOCAB_FILE } from '../engine/modelfiles/index.ts';
import { projectRoot } from '../engine/paths.ts';
import { runCommand } from './run.ts';

interface EvalOptions {
  model?: string[];
  data: string;
  split: EvalSplit;
  json?: boolean;
  /** A demo-library folder to evaluate too, or false (--no-demo). */
  demo?: string | false;
}

type Figures = Pick<RetrievalMetrics, 'rsum'> & { i2t: object; t2i: object };

/** The bundled demo library, the foreign set every shipped model is also scored on. */
const DEMO_DIR = join(projectRoot, 'assets', 'sample-library');

interface ModelReport extends Omit<JointEvaluation, 'ranks' | 'rankedImages' | 'rankedCaptions'> {
  dir: string;
  split: EvalSplit;
  /** Things a reader of the figures should know (a model trained on another preparation, ...). */
  notes: string[];
  /** The same model on the demo set (sagasu eval's protocol, one caption per photo). */
  demo?: Figures;
  /** Search's fused ranking with this model, on the demo set. */
  demoSearch?: Figures;
}

/** Differences between the app's tokenization today and the token ids the model was trained on. */
async function tokenDrift(model: JointModel, data: PreparedSplit): Promise<string | undefined> {
  const vocab = await readFile(join(model.dir, VOCAB_FILE));
  if (sha256Hex(vocab) !== data.vocabSha256) return undefined;
  let differ = 0;
  for (const [k, caption] of data.captions.entries()) {
    const now = model.text.vocabularyIds(caption.text);
    const then = data.storedTokens[k] as Int32Array;
    if (now.length !== then.length || now.some((id, t) => id !== then[t])) differ++;
  }
  return differ > 0
    ? `${differ} of ${data.captions.length} captions tokenize differently now than when the data was prepared: the tokenizer changed since training`
    : undefined;
}

async function evaluateDir(dir: string, data: PreparedSplit): Promise<ModelReport> {
  const model = await JointModel.open(dir, { layers: data.layers });
  try {
    const notes: string[] = [];
    const trainedOn = (model.manifest.data as { metaSha256?: string } | undefined)?.metaSha256;
    if (trainedOn && trainedOn !== data.metaSha256)
      notes.push(`trained on another preparation of the data (meta.json ${trainedOn.slice(0, 12)}…)`);
    const drift = await tokenDrift(model, data);
    if (drift) notes.push(drift);
    // The search row where this model has fitted fusion weights (the shipped FNE); silently absent otherwise.
    const setup = model.manifest.features === 'fne' ? await defaultSearchSetup(model, []) : undefined;
    const probs = setup ? await loadPreparedProbs(data).catch(() => undefined) : undefined;
    if (setup && !probs)
      notes.push('no search row: the prepared data has no class probabilities (npm run data:prepare)');
    const {
      ranks: _r,
      rankedImages: _i,
      rankedCaptions: _c,
      ...result
    } = await evaluateJointModel(model, data, setup && probs ? { setup, probs } : undefined);
    if (result.skipped.emptyCaptions > 0)
      notes.push(`skipped ${result.skipped.emptyCaptions} captions with no words`);
    if (result.skipped.uncaptionedImages > 0)
      notes.push(`skipped ${result.skipped.uncaptionedImages} images left without a caption`);
    return { dir, split: data.split, ...result, notes };
  } finally {
    await model.close();
  }
}

/** The demo set through sagasu eval's runner: the model's own row, and search's where it has one. */
async function evaluateDemo(dir: string, demo: string, report: ModelReport): Promise<void> {
  const run = await runEval(demo, {
    model: dir,
    embedding: report.features === 'one-layer' ? 'one-layer' : 'fne',
    explain: false,
  });
  const own = run.results[report.features === 'one-layer' ? 'one-layer' : 'fne'];
  if (own) report.demo = { i2t: own.i2t, t2i: own.t2i, rsum: own.rsum };
  const search = run.results.search;
  if (search) report.demoSearch = { i2t: search.i2t, t2i: search.t2i, rsum: search.rsum };
}

function sideBySide(reports: ModelReport[], split: EvalSplit): string {
  const rows: string[][] = [];
  for (const r of reports) {
    rows.push([r.model, r.rsum.toFixed(1), r.demo ? r.demo.rsum.toFixed(1) : '-']);
    if (r.search || r.demoSearch)
      rows.push([
        `search (${r.model})`,
        r.search?.rsum.toFixed(1) ?? '-',
        r.demoSearch?.rsum.toFixed(1) ?? '-',
      ]);
  }
  return textTable(['embedding', `Flickr8k ${split} rsum`, 'demo rsum'], rows);
}

function table(reports: ModelReport[]): string {
  const f1 = (x: number) => x.toFixed(1);
  const header = [
    'model',
    'features',
    'dim',
    'i2t R@1',
    'R@5',
    'R@10',
    'medr',
    't2i R@1',
    'R@5',
    'R@10',
    'medr',
    'rsum',
  ];
  const cells = (name: string, features: string, dim: number, f: RetrievalMetrics) => [
    name,
    features,
    String(dim),
    f1(f.i2t.r1),
    f1(f.i2t.r5),
    f1(f.i2t.r10),
    String(f.i2t.medr),
    f1(f.t2i.r1),
    f1(f.t2i.r5),
    f1(f.t2i.r10),
    String(f.t2i.medr),
    f1(f.rsum),
  ];
  const rows = reports.flatMap((r) => [
    cells(r.model, r.features, r.dim, r),
    ...(r.search ? [cells('search', `${r.features}+concepts`, r.dim, r.search)] : []),
  ]);
  // Names and kinds read left to right; numbers line up on the right.
  return textTable(header, rows, 2);
}

const program = new Command('npm run eval')
  .description(
    "the paper's evaluation (ANCHORS.md §2): annotation and retrieval R@1/5/10 and median rank of joint models on a Flickr8k split",
  )
  .option('--model <dir...>', `model directories (default: every one in ${jointModelsDir})`)
  .option('--data <dir>', 'the prepared data (npm run data:prepare)', defaultPreparedDir)
  .addOption(new Option('--split <split>', 'which split to rank').choices(['test', 'val']).default('test'))
  .option('--json', 'one JSON array on stdout')
  .option(
    '--demo <dir>',
    'a demo-library folder to score too (default: assets/sample-library, for the shipped models)',
  )
  .option('--no-demo', 'Flickr8k only')
  .showHelpAfterError()
  .action(async (options: EvalOptions) => {
    const dirs = options.model ?? (await listJointModels());
    if (dirs.length === 0)
      throw new SagasuError(
        'no-model',
        jointModelsDir,
        'holds no joint model; pass --model <dir> (a training/export.py output)',
      );
    const data = await loadPreparedSplit(options.data, options.split);
    const log = options.json ? () => {} : (line: string) => console.error(line);
    log(
      `eval: ${data.split} split of ${data.dir}: ${data.images.length} images, ${data.captions.length} captions`,
    );
    const reports: ModelReport[] = [];
    // One unusable model (tampered, trained for another tokenizer) must not hide the others' figures.
    const failures: { dir: string; error: { code: string; message: string } }[] = [];
    for (const dir of dirs) {
      log(`eval: ${dir}`);
      try {
        reports.push(await evaluateDir(dir, data));
      } catch (error) {
        if (!(error instanceof SagasuError)) throw error;
        failures.push({ dir, error: { code: error.code, message: error.message } });
      }
    }
    // The demo set beside Flickr8k for the shipped models (or a folder asked for): foreign photos, same protocol.
    const demo =
      options.demo === false ? undefined : (options.demo ?? (options.model ? undefined : DEMO_DIR));
    if (demo && !existsSync(join(demo, DEMO_ATTRIBUTION)))
      log(`eval: no demo set: ${join(demo, DEMO_ATTRIBUTION)} is missing (npm run demo:build)`);
    else if (demo)
      for (const r of reports) {
        log(`eval: ${r.dir} on the demo set ${demo}`);
        await evaluateDemo(r.dir, demo, r);
      }
    if (failures.length > 0) process.exitCode = 1;
    if (options.json) {
      console.log(JSON.stringify([...reports, ...failures], null, 2));
      return;
    }
    if (reports.length > 0) console.log(table(reports));
    if (reports.some((r) => r.demo)) console.log(`\n${sideBySide(reports, data.split)}`);
    for (const r of reports) {
      console.log(
        `${r.model}: ${r.images} images, ${r.captions} captions; i2t mean rank ${r.i2t.meanr.toFixed(1)}, t2i mean rank ${r.t2i.meanr.toFixed(1)}; ${r.seconds.text.toFixed(1)} s text, ${r.seconds.image.toFixed(1)} s images, ${r.seconds.ranking.toFixed(1)} s ranking`,
      );
      for (const note of r.notes) console.log(`  note: ${note}`);
    }
    for (const f of failures) console.error(`eval: ${f.dir}: not evaluated: ${f.error.message}`);
  });

await runCommand('eval', async () => {
  await program.parseAsync(process.argv);
});
