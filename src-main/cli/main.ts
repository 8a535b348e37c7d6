import { Command } from 'commander';
import { registerEval } from './eval.ts';
import { registerFeatures } from './features.ts';
import { registerLibrary } from './library.ts';
import { runCommand } from './run.ts';

const program = new Command('sagasu')
  .description('find photos by sentence; caption and tag them')
  .showHelpAfterError();
registerFeatures(program);
registerEval(program);
registerLibrary(program);

await runCommand('sagasu', async () => {
  await program.parseAsync(process.argv);
});
