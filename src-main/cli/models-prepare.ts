import { CNN_MODES, prepareCnn, prepareResnet50 } from '../engine/cnn/index.ts';
import { SagasuError } from '../engine/errors.ts';
import { runCommand } from './run.ts';

await runCommand('models:prepare', async () => {
  const options = { log: (line: string) => console.log(line), force: process.argv.includes('--force') };
  await prepareCnn(CNN_MODES, options);
  try {
    await prepareResnet50(options);
  } catch (error) {
    // ResNet-50 is the comparison backbone, not the default: a machine that cannot obtain it still sets up.
    if (!(error instanceof SagasuError)) throw error;
    console.log(`models:prepare: ResNet-50 not built (the default MobileNetV2 is): ${error.message}`);
  }
});
