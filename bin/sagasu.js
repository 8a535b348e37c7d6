#!/usr/bin/env node
// Runs the TypeScript CLI directly; tsx compiles it on the fly.
import { register } from 'tsx/esm/api';

register();
// Before anything loads onnxruntime: a long command line is handed to a relaunched CLI (see argv.ts).
const { relaunchIfArgvLong } = await import('../src-main/cli/argv.ts');
const relaunched = await relaunchIfArgvLong();
if (relaunched === null) await import('../src-main/cli/main.ts');
else process.exitCode = relaunched;
