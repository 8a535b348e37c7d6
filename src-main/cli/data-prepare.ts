import { SingleBar } from 'cli-progress';
import { Command, InvalidArgumentError } from 'commander';
import { CNN_BACKBONES, type CnnBackbone } from '../engine/cnn/index.ts';
import { DEFAULT_MIN_COUNT, defaultPreparedDir, prepareFlickr8k } from '../engine/datasets/prepare.ts';
import { defaultPreparedJaDir, prepareFlickr8kJapanese } from '../engine/datasets/prepare-ja.ts';
import { backboneArg } from './backbone.ts';
import { runCommand } from './run.ts';

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError('expected a positive integer');
  return n;
}

/** npm run data:prepare: the training inputs of the joint space (FNE, one-layer vectors, caption tokens). */
const program = new Command('data:prepare')
  .description(
    'compute the FNE and one-layer vector of every Flickr8k photo and tokenize every caption, for training',
  )
  .option(
    '--lang <en|ja>',
    'ja: tokenize the Japanese captions only, for the photos of the English folder given by --images',
    (v: string) => {
      if (v !== 'en' && v !== 'ja') throw new InvalidArgumentError('expected en or ja');
      return v;
    },
    'en',
  )
  .option(
    '--images <dir>',
    'with --lang ja: the English prepared folder that holds the photos',
    defaultPreparedDir,
  )
  .option(
    '--backbone <name>',
    `the CNN (${CNN_BACKBONES.join(' or ')}); not the default: the output defaults to ${defaultPreparedDir}-<name>`,
    backboneArg,
    'mobilenet_v2',
  )
  .option(
    '--out <dir>',
    `output folder (default ${defaultPreparedDir}, with --lang ja ${defaultPreparedJaDir})`,
  )
  .option(
    '--min-count <n>',
    'vocabulary: keep words seen this often in train+val captions',
    positiveInteger,
    DEFAULT_MIN_COUNT,
  )
  .option('--limit-images <n>', 'only the first N photos by file name, with their captions', positiveInteger)
  .option('--batch-size <n>', 'photos per CNN batch', positiveInteger, 16)
  .option('--features-cache <dir>', 'parent folder of the per-model feature caches (default .cache/features)')
  .option(
    '--thresholds <negative,positive>',
    "ternarization thresholds on the standardized features (default the paper's -0.25,0.15)",
    (v: string) => {
      const parts = v.split(',').map((x) => Number(x.trim()));
      const [negative, positive] = parts as [number, number];
      if (parts.length !== 2 || !parts.every(Number.isFinite) || !(negative <= 0 && positive >= 0))
        throw new InvalidArgumentError('expected two numbers, negative,positive (e.g. -0.25,0.15)');
      return { negative, positive };
    },
  )
  .showHelpAfterError();

await runCommand('data:prepare', async () => {
  program.parse(process.argv);
  const options = program.opts<{
    lang: 'en' | 'ja';
    backbone: CnnBackbone;
    images: string;
    out?: string;
    minCount: number;
    limitImages?: number;
    batchSize: number;
    featuresCache?: string;
    thresholds?: { negative: number; positive: number };
  }>();
  if (options.lang === 'ja') {
    await prepareFlickr8kJapanese({
      images: options.images,
      out: options.out ?? defaultPreparedJaDir,
      minCount: options.minCount,
      log: (line) => console.log(line),
    });
    return;
  }
  const bar = new SingleBar({
    format: 'features [{bar}] {value}/{total} images | {eta}s left',
    etaBuffer: 200,
    noTTYOutput: true,
    notTTYSchedule: 15_000,
  });
  let started = false;
  const report = await prepareFlickr8k({
    backbone: options.backbone,
    out:
      options.out ??
      (options.backbone === 'mobilenet_v2'
        ? defaultPreparedDir
        : `${defaultPreparedDir}-${options.backbone}`),
    minCount: options.minCount,
    batchSize: options.batchSize,
    ...(options.limitImages !== undefined ? { limitImages: options.limitImages } : {}),
    ...(options.featuresCache ? { featureCacheRoot: options.featuresCache } : {}),
    ...(options.thresholds ? { thresholds: options.thresholds } : {}),
    log: (line) => console.log(line),
    onProgress: (done, total) => {
      if (!started) bar.start(total, 0);
      started = true;
      bar.update(done);
      if (done === total) bar.stop();
    },
  });
  console.log(
    `data:prepare: computed ${report.computed}, reused ${report.reused} cached image features (${report.featureCacheDir})`,
  );
});
