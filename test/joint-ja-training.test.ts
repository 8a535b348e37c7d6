/**
 * The Japanese training path in CI: training/tests/tiny_ja.py on synthetic data (frozen float16 image side,
 * resume, refusals, text-only export), then its export as the app sees it: onnxruntime-node reproduces the
 * PyTorch fixtures, and the app refuses it because its token ids come from another tokenizer than its
 * Japanese one (the synthetic words are no Japanese).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelError } from '../src-main/engine/errors.ts';
import { TEXT_ENCODER_FILE } from '../src-main/engine/modelfiles/index.ts';
import { projectRoot } from '../src-main/engine/paths.ts';
import { SentenceEncoder } from '../src-main/engine/text/index.ts';
import { errorOf, type Fixtures, maxAbsDiff, TOLERANCE } from './helpers/joint-parity.ts';
import { skipNote, trainingPython } from './helpers/shared.ts';

const MINUTES = 60_000;
const note = skipNote({ training: true });

describe(`the Japanese training self-test (python -m training.tests.tiny_ja)${note}`, () => {
  let work: string;
  let stdout = '';
  beforeAll(async () => {
    if (note) return;
    work = await mkdtemp(join(tmpdir(), 'sagasu-tiny-ja-'));
    stdout = await new Promise<string>((resolve, reject) =>
      execFile(
        trainingPython,
        ['-m', 'training.tests.tiny_ja', '--keep', work],
        { cwd: projectRoot, timeout: 10 * MINUTES, maxBuffer: 16 * 1024 * 1024 },
        (error, out, err) =>
          error
            ? reject(
                new Error(`tiny_ja failed: ${`${out}\n${err}`.trim().split('\n').slice(-30).join('\n')}`),
              )
            : resolve(out),
      ),
    );
  }, 10 * MINUTES);
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it.skipIf(note)('passes (frozen image side, resume bit-identical, refusals, export with parity)', () => {
    expect(stdout).toMatch(/^tiny_ja: all \d+ checks passed/m);
  });

  it.skipIf(note)('exports a text encoder that onnxruntime-node runs as PyTorch did', async () => {
    const dir = join(work, 'models', 'fne-ja');
    const fixtures = JSON.parse(await readFile(join(dir, 'fixtures.json'), 'utf8')) as Fixtures;
    const session = await ort.InferenceSession.create(join(dir, TEXT_ENCODER_FILE), {
      executionProviders: ['cpu'],
    });
    try {
      for (const f of [fixtures.text.single, fixtures.text.batch, ...fixtures.text.alone]) {
        const [b, l] = [f.tokens.length, (f.tokens[0] as number[]).length];
        const result = await session.run({
          tokens: new ort.Tensor('int64', BigInt64Array.from(f.tokens.flat(), BigInt), [b, l]),
          lengths: new ort.Tensor('int64', BigInt64Array.from(f.lengths, BigInt), [b]),
        });
        expect(maxAbsDiff(result.embedding?.data as Float32Array, f.embedding)).toBeLessThanOrEqual(
          TOLERANCE,
        );
      }
    } finally {
      await session.release();
    }
  });

  it.skipIf(note)('is refused by the app: its ids come from another tokenizer than ja-1', async () => {
    const dir = join(work, 'models', 'fne-ja');
    const error = await errorOf(() => SentenceEncoder.open(dir, { providers: ['cpu'] }));
    expect(error).toBeInstanceOf(ModelError);
    expect((error as Error).message).toMatch(
      /trained on tokenizer synthetic-ja, but this app tokenizes ja with ja-1/,
    );
  });
});
