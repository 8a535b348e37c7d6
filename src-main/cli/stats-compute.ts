import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SingleBar } from 'cli-progress';
import { Command } from 'commander';
import { backboneMode, CNN_BACKBONES, type CnnBackbone, verifiedCnn } from '../engine/cnn/index.ts';
import { splitImagePaths } from '../engine/datasets/flickr8k.ts';
import { SagasuError } from '../engine/errors.ts';
import { FneExtractor, StatsAccumulator, saveStats, statsPaths } from '../engine/fne/index.ts';
import { cacheDir } from '../engine/paths.ts';
import { backboneArg } from './backbone.ts';
import { runCommand } from './run.ts';

const CHECKPOINT_EVERY = 500;

const program = new Command('stats:compute')
  .description('mean and std of every raw FNE feature over the Flickr8k train split')
  .option('--backbone <name>', `the CNN (${CNN_BACKBONES.join(' or ')})`, backboneArg, 'mobilenet_v2')
  .showHelpAfterError();

/**
 * Recomputes models/fne/stats.{bin,json} (models/fne/<backbone>/ for another backbone). The running sums are
 * saved every 500 images under .cache/stats/, so an interrupted run resumes where it stopped.
 */
await runCommand('stats:compute', async () => {
  program.parse(process.argv);
  const backbone = program.opts<{ backbone: CnnBackbone }>().backbone;
  const files = await splitImagePaths('train');
  const mode = backboneMode(backbone);
  const manifest = await verifiedCnn(mode, undefined, backbone);
  const extractor = await FneExtractor.open({ backbone, mode, stats: 'none', log: console.log });
  const checkpointFile = join(cacheDir, 'stats', `${backbone}-${manifest.onnx.sha256.slice(0, 16)}.f64`);
  const saved = await readFile(checkpointFile).catch(() => undefined);
  const resumed =
    saved &&
    StatsAccumulator.resume(
      extractor.fneDim,
      new Float64Array(saved.buffer.slice(saved.byteOffset, saved.byteOffset + saved.length)),
    );
  const acc = resumed ?? new StatsAccumulator(extractor.fneDim);
  if (resumed) console.log(`stats:compute: resuming after ${acc.count} images (${checkpointFile})`);
  const bar = new SingleBar({
    format: 'stats [{bar}] {value}/{total} images | {eta}s left',
    etaBuffer: 200,
    noTTYOutput: true,
    notTTYSchedule: 15_000,
  });
  bar.start(files.length, acc.count);
  const failed: string[] = [];
  await mkdir(join(cacheDir, 'stats'), { recursive: true });
  for await (const result of extractor.extract(files.slice(acc.count), { batchSize: 16, keepRaw: true })) {
    if (result.ok && result.features.fneRaw) acc.add(result.features.fneRaw);
    else if (!result.ok) failed.push(result.error.message);
    bar.increment();
    // Only a clean prefix is saved: the count must equal the number of files consumed.
    if (failed.length === 0 && acc.count % CHECKPOINT_EVERY === 0)
      await writeFile(checkpointFile, new Uint8Array(acc.checkpoint().buffer));
  }
  bar.stop();
  await extractor.close();
  if (failed.length > 0)
    throw new SagasuError(
      'dataset-damaged',
      'flickr8k',
      `${failed.length} training images failed: ${failed.slice(0, 3).join('; ')}`,
    );
  const { mean, std } = acc.finish();
  const paths = statsPaths(backbone);
  await saveStats(
    mean,
    std,
    {
      mode,
      cnnSha256: manifest.onnx.sha256,
      dataset: 'Flickr8k (224x224 copies)',
      split: 'train (Flickr_8k.trainImages.txt)',
      images: acc.count,
      std: 'population',
      command: `npm run stats:compute${backbone === 'mobilenet_v2' ? '' : ` -- --backbone ${backbone}`}`,
      computedAt: new Date().toISOString(),
    },
    paths,
  );
  await rm(checkpointFile, { force: true });
  console.log(`wrote ${paths.bin} from ${acc.count} images`);
});
