import { CNN_MODES, prepareCnn } from '../engine/cnn/index.ts';
import { runCommand } from './run.ts';

await runCommand('models:prepare', async () => {
  await prepareCnn(CNN_MODES, { log: (line) => console.log(line), force: process.argv.includes('--force') });
});
