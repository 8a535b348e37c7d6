/**
 * npm run calibrate [-- --data <prepared dir>] — the relevance cutoff of every joint model in models/joint,
 * from the Flickr8k VALIDATION split: every (caption, image) score, matching pairs (the caption was written
 * for the image) against non-matching ones. The cutoff is the score 99 % of non-matching pairs stay at or
 * below, so a query whose subject is absent from a library returns few photos; models/search.json records
 * it with the share of matching pairs above it. The test split stays untouched for the reported figures.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { runCommand } from '../src-main/cli/run.ts';
import {
  chooseCutoff,
  pairScores,
  SEARCH_CALIBRATION_FILE,
  SEARCH_CALIBRATION_FORMAT,
  type SearchCalibration,
} from '../src-main/engine/describe/calibration.ts';
import { defaultPreparedDir, loadPreparedSplit } from '../src-main/engine/eval/index.ts';
import { JointModel, listJointModels, MANIFEST_FILE } from '../src-main/engine/joint/index.ts';
import { cacheDir, projectRoot } from '../src-main/engine/paths.ts';

const QUANTILE = 0.99;

await runCommand('calibrate', async () => {
  const at = process.argv.indexOf('--data');
  // The data prepared by this checkout's engine when there is one: the features the app computes at run time.
  const v2 = join(cacheDir, 'data', 'flickr8k-v2');
  const dataDir = at > 0 ? (process.argv[at + 1] as string) : existsSync(v2) ? v2 : defaultPreparedDir;
  const split = await loadPreparedSplit(dataDir, 'val');
  const models: SearchCalibration[] = [];
  for (const dir of await listJointModels()) {
    const model = await JointModel.open(dir, { layers: split.layers });
    try {
      const started = performance.now();
      const images = await model.embedImages(split.images);
      const sentences = await model.encodeSentences(split.captions.map((c) => c.text));
      const scores = pairScores(
        images,
        sentences,
        split.captions.map((c) => c.image),
        model.dim,
      );
      const chosen = chooseCutoff(scores, QUANTILE);
      const strict = chooseCutoff(scores, 0.999);
      const manifestSha256 = createHash('sha256')
        .update(await readFile(join(dir, MANIFEST_FILE)))
        .digest('hex');
      const round = (x: number) => Math.round(x * 1e6) / 1e6;
      models.push({
        model: model.name,
        manifestSha256,
        cutoff: round(chosen.cutoff),
        how: `the score ${QUANTILE * 100} % of non-matching (caption, image) pairs of the Flickr8k validation split stay at or below (${split.images.length} images, ${split.captions.length} captions, data ${basename(dataDir)} ${split.metaSha256.slice(0, 12)})`,
        matchingAbove: round(chosen.matchingAbove),
        nonMatchingAbove: round(chosen.nonMatchingAbove),
        pairs: { matching: scores.matching.length, nonMatching: scores.nonMatching.length },
        stricter: {
          quantile: 0.999,
          cutoff: round(strict.cutoff),
          matchingAbove: round(strict.matchingAbove),
          nonMatchingAbove: round(strict.nonMatchingAbove),
        },
      });
      console.log(
        `calibrate: ${model.name}: cutoff ${chosen.cutoff.toFixed(4)}; above it ${(chosen.matchingAbove * 100).toFixed(1)} % of matching and ${(chosen.nonMatchingAbove * 100).toFixed(2)} % of non-matching pairs (at 99.9 %: cutoff ${strict.cutoff.toFixed(4)}, ${(strict.matchingAbove * 100).toFixed(1)} % matching) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
      );
    } finally {
      await model.close();
    }
  }
  const temp = `${SEARCH_CALIBRATION_FILE}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify({ format: SEARCH_CALIBRATION_FORMAT, models }, null, 2)}\n`);
  await rename(temp, SEARCH_CALIBRATION_FILE);
  console.log(`calibrate: wrote ${relative(projectRoot, SEARCH_CALIBRATION_FILE)}`);
});
