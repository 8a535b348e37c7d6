import { SingleBar } from 'cli-progress';
import { DEFAULT_CNN_MODE, verifiedCnn } from '../engine/cnn/index.ts';
import { splitImagePaths } from '../engine/datasets/flickr8k.ts';
import { SagasuError } from '../engine/errors.ts';
import { FneExtractor, StatsAccumulator, saveStats, statsBinPath } from '../engine/fne/index.ts';
import { runCommand } from './run.ts';

/** Recomputes models/fne/stats.{bin,json}: mean and std of every raw FNE feature over the Flickr8k train split. */
await runCommand('stats:compute', async () => {
  const files = await splitImagePaths('train');
  const mode = DEFAULT_CNN_MODE;
  const manifest = await verifiedCnn(mode);
  const extractor = await FneExtractor.open({ mode, stats: 'none', log: console.log });
  const acc = new StatsAccumulator(extractor.fneDim);
  const bar = new SingleBar({
    format: 'stats [{bar}] {value}/{total} images | {eta}s left',
    etaBuffer: 200,
    noTTYOutput: true,
    notTTYSchedule: 15_000,
  });
  bar.start(files.length, 0);
  const failed: string[] = [];
  for await (const result of extractor.extract(files, { batchSize: 16, keepRaw: true })) {
    if (result.ok && result.features.fneRaw) acc.add(result.features.fneRaw);
    else if (!result.ok) failed.push(result.error.message);
    bar.increment();
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
  await saveStats(mean, std, {
    mode,
    cnnSha256: manifest.onnx.sha256,
    dataset: 'Flickr8k (224x224 copies)',
    split: 'train (Flickr_8k.trainImages.txt)',
    images: acc.count,
    std: 'population',
    command: 'npm run stats:compute',
    computedAt: new Date().toISOString(),
  });
  console.log(`wrote ${statsBinPath} from ${acc.count} images`);
});
