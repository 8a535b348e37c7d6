import { Command, InvalidArgumentError, Option } from 'commander';
import { runCommand } from '../cli/run.ts';
import {
  bootstrapLibrary,
  defaultLibraryDir,
  deferredEngine,
  ensureRenderer,
  rendererDir,
  sampleLibraryDir,
} from '../doors/index.ts';
import { openEngineWorker } from '../engine/api/index.ts';
import { ArgumentError } from '../engine/errors.ts';
import { startServer } from './app.ts';

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('expected a port number from 0 to 65535');
  return n;
}

const log = (line: string) => process.stderr.write(`sagasu serve: ${line}\n`);

const program = new Command()
  .name('sagasu-serve')
  .description('Sagasu in the browser: a local server on 127.0.0.1 with a per-run token')
  .addOption(new Option('--port <n>', 'port to listen on').argParser(port).default(0, 'a free one'))
  .option('--library <dir>', 'library folder (catalog and index)', defaultLibraryDir())
  .option('--model-set <name>', 'move the library to this model set (its vectors are made in the background)')
  .option('--no-demo', 'do not add the demo library on first run')
  .option('--no-build', 'do not build the renderer when it is missing or stale')
  .action(
    async (options: { port: number; library: string; modelSet?: string; demo: boolean; build: boolean }) => {
      await runCommand('sagasu serve', async () => {
        if (options.build) ensureRenderer(log);
        // Listen first: the page loads while the models do, and its first calls wait for the engine.
        const opening = openEngineWorker({
          libraryDir: options.library,
          watch: true,
          ...(options.modelSet === undefined ? {} : { modelSet: options.modelSet }),
        });
        const server = await startServer({
          engine: deferredEngine(opening),
          rendererDir,
          port: options.port,
        }).catch(async (error: NodeJS.ErrnoException) => {
          await opening.then((engine) => engine.close()).catch(() => {});
          if (error.code === 'EADDRINUSE')
            throw new ArgumentError(
              '--port',
              `port ${options.port} is in use; pick another or leave --port out`,
            );
          throw error;
        });
        // stdout carries the URL alone: scripts and tests read its first line.
        process.stdout.write(`${server.browserUrl}\n`);
        log(`library ${options.library}`);
        let engine: Awaited<typeof opening>;
        try {
          engine = await opening;
        } catch (error) {
          await server.close();
          throw error;
        }
        let closing = false;
        const shutdown = async () => {
          if (closing) return;
          closing = true;
          await server.close();
          await engine.close();
          process.exit(0);
        };
        process.on('SIGINT', shutdown);
        process.on('SIGTERM', shutdown);
        if (options.demo) {
          const first = await bootstrapLibrary(engine, {
            libraryDir: options.library,
            demoDir: sampleLibraryDir(),
          });
          if (first.added) log(first.reason);
        }
      });
    },
  );

await program.parseAsync();
