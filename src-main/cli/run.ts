import { exitCode, SagasuError } from '../engine/errors.ts';

/**
 * Runs a command body: a SagasuError (bad file, bad argument, missing model) becomes one line on stderr
 * naming the command and its exit code (exitCode); anything else is a bug and keeps its stack trace.
 */
export async function runCommand(name: string, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    if (!(error instanceof SagasuError)) throw error;
    console.error(`${name}: ${error.message}`);
    process.exitCode = exitCode(error.code);
  }
}
