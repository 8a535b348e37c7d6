import { Command } from 'commander';
import { SagasuError } from '../engine/errors.ts';
import { registerFeatures } from './features.ts';

const program = new Command('sagasu')
  .description('find photos by sentence; caption and tag them')
  .showHelpAfterError();
registerFeatures(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (!(error instanceof SagasuError)) throw error;
  console.error(`sagasu: ${error.message}`);
  process.exitCode = 1;
}
