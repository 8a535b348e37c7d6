import { CNN_MODES, prepareCnn } from '../engine/cnn/index.ts';
import { SagasuError } from '../engine/errors.ts';

try {
  await prepareCnn(CNN_MODES, { log: (line) => console.log(line), force: process.argv.includes('--force') });
} catch (error) {
  if (!(error instanceof SagasuError)) throw error;
  console.error(`models:prepare: ${error.message}`);
  process.exitCode = 1;
}
