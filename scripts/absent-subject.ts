/**
 * npm run absent-subject [-- --data <prepared dir>] [--split test|val] [queries…] — how many photos of a
 * Flickr8k split pass search's relevance cutoff for subjects the split does not show (default "giraffe"),
 * ranked exactly as search ranks them: the shipped FNE model's cosine plus the concept term (from the stored
 * top classes) with the weights and fused cutoff of models/search.json.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../src-main/cli/run.ts';
import { loadSearchCalibration } from '../src-main/engine/calibration/index.ts';
import {
  captionConcepts,
  conceptAdjust,
  defaultSearchSetup,
  loadPreparedProbs,
  loadPreparedSplit,
} from '../src-main/engine/eval/index.ts';
import { classTableOf } from '../src-main/engine/fusion/index.ts';
import { JointModel, jointModelsDir } from '../src-main/engine/joint/index.ts';
import { cacheDir } from '../src-main/engine/paths.ts';

await runCommand('absent-subject', async () => {
  const args = process.argv.slice(2);
  const take = (flag: string) => {
    const at = args.indexOf(flag);
    if (at < 0) return undefined;
    const [value] = args.splice(at, 2).slice(1);
    return value;
  };
  const v2 = join(cacheDir, 'data', 'flickr8k-v2');
  const dataDir = take('--data') ?? v2;
  const split = (take('--split') ?? 'test') as 'test' | 'val';
  const queries = args.length > 0 ? args : ['giraffe'];
  if (!existsSync(dataDir)) throw new Error(`${dataDir}: no prepared data (npm run data:prepare)`);
  const data = await loadPreparedSplit(dataDir, split);
  const model = await JointModel.open(join(jointModelsDir, 'fne'), { layers: data.layers });
  try {
    const calibration = await loadSearchCalibration(model.name, { modelDir: model.dir });
    const setup = await defaultSearchSetup(model, []);
    if (!calibration?.fusion || !setup) throw new Error('models/search.json has no fusion for the FNE model');
    const images = await model.embedImages(data.images);
    const sentences = await model.encodeSentences(queries);
    const concepts = await captionConcepts(queries, 'en', setup.concepts, model.text);
    const adjust = conceptAdjust(concepts, classTableOf(await loadPreparedProbs(data)), setup.weights);
    const n = data.images.length;
    for (const [q, query] of queries.entries()) {
      const row = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let d = 0; d < model.dim; d++)
          s += (images[i * model.dim + d] as number) * (sentences[q * model.dim + d] as number);
        row[i] = s;
      }
      const cosineAbove = row.filter((x) => x >= calibration.cutoff).length;
      adjust(q, 1, row);
      const fusedAbove = row.filter((x) => x >= (calibration.fusion?.cutoff ?? 0)).length;
      const terms = concepts[q]?.terms.matches.length ?? 0;
      console.log(
        `"${query}" on the ${n} Flickr8k ${split} photos: ${fusedAbove} pass the fused cutoff ${calibration.fusion.cutoff} (${terms} concept matches); by the joint cosine and its cutoff ${calibration.cutoff}: ${cosineAbove}`,
      );
    }
  } finally {
    await model.close();
  }
});
