import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cnnManifestPath } from '../src-main/engine/cnn/build.ts';
import {
  CnnSession,
  chooseProviders,
  cnnModelPath,
  readTflite,
  UPSTREAM_FILES,
  verifiedCnn,
} from '../src-main/engine/cnn/index.ts';
import { ModelError } from '../src-main/engine/errors.ts';
import { cnnBuilt, shared, skipNote } from './helpers/shared.ts';

const cpuOnly = [{ name: 'cpu', bundled: true }];
const linuxWithCuda = [...cpuOnly, { name: 'cuda', bundled: false }];

describe('execution provider choice', () => {
  const base = {
    platform: 'linux' as const,
    backends: linuxWithCuda,
    nvidiaDriver: false,
    override: undefined,
  };

  it('CUDA first on Linux with an NVIDIA driver and a CUDA-capable build, CPU after it', () => {
    expect(chooseProviders({ ...base, nvidiaDriver: true })).toEqual(['cuda', 'cpu']);
  });
  it('CPU alone without the driver, or when the build has no CUDA', () => {
    expect(chooseProviders(base)).toEqual(['cpu']);
    expect(chooseProviders({ ...base, nvidiaDriver: true, backends: cpuOnly })).toEqual(['cpu']);
  });
  it('DirectML on Windows and CoreML on macOS when the build has them', () => {
    expect(
      chooseProviders({ ...base, platform: 'win32', backends: [...cpuOnly, { name: 'dml', bundled: true }] }),
    ).toEqual(['dml', 'cpu']);
    expect(
      chooseProviders({
        ...base,
        platform: 'darwin',
        backends: [...cpuOnly, { name: 'coreml', bundled: true }],
      }),
    ).toEqual(['coreml', 'cpu']);
    expect(chooseProviders({ ...base, platform: 'darwin', backends: cpuOnly })).toEqual(['cpu']);
  });
  it('SAGASU_EP overrides the choice, always keeping CPU as the fallback; auto means choose', () => {
    expect(chooseProviders({ ...base, override: 'cpu' })).toEqual(['cpu']);
    expect(chooseProviders({ ...base, override: 'CUDA' })).toEqual(['cuda', 'cpu']);
    expect(chooseProviders({ ...base, nvidiaDriver: true, override: 'auto' })).toEqual(['cuda', 'cpu']);
  });
  it('an unknown provider in SAGASU_EP is an error naming it', () => {
    expect(() => chooseProviders({ ...base, override: 'tpu' })).toThrow(
      /SAGASU_EP: unknown execution provider tpu/,
    );
  });
});

describe('the TFLite reader', () => {
  it('refuses a file that is not a TFLite model, by name', () => {
    expect(() => readTflite(new TextEncoder().encode('definitely not a flatbuffer'), 'notes.tflite')).toThrow(
      ModelError,
    );
    expect(() => readTflite(new Uint8Array(3), 'tiny.tflite')).toThrow(/tiny.tflite: not a TFLite model/);
  });

  it.skipIf(!shared)(
    `reads the upstream graph: 66 ops of 6 kinds, uint8 input 1x224x224x3${skipNote({ shared: true })}`,
    async () => {
      const file = join(shared as string, 'models', UPSTREAM_FILES.model.name);
      const model = readTflite(await readFile(file), file);
      const counts: Record<string, number> = {};
      for (const op of model.operators) counts[op.kind] = (counts[op.kind] ?? 0) + 1;
      expect(counts).toEqual({
        CONV_2D: 36,
        DEPTHWISE_CONV_2D: 17,
        ADD: 10,
        AVERAGE_POOL_2D: 1,
        RESHAPE: 1,
        SOFTMAX: 1,
      });
      const input = model.tensors[model.inputs[0] as number];
      expect(input).toMatchObject({ shape: [1, 224, 224, 3], type: 3 });
      expect(input?.quantization?.scale[0]).toBeCloseTo(1 / 128, 9);
      expect(input?.quantization?.zeroPoint[0]).toBe(128);
    },
  );
});

describe.skipIf(!cnnBuilt)(`a built CNN file that was altered${skipNote({ cnn: true })}`, () => {
  it('is refused by name with the sha256 it should have, and a session is never opened on it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sagasu-cnn-'));
    await copyFile(cnnManifestPath('qdq'), cnnManifestPath('qdq', dir));
    const bytes = await readFile(cnnModelPath('qdq'));
    bytes[bytes.length - 100] = (bytes[bytes.length - 100] as number) ^ 1;
    await writeFile(cnnModelPath('qdq', dir), bytes);
    const expected = (await verifiedCnn('qdq')).onnx.sha256;
    const error = await verifiedCnn('qdq', dir).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'sha256-mismatch', subject: cnnModelPath('qdq', dir) });
    expect((error as Error).message).toContain(expected);
  });

  it('a missing one says how to build it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sagasu-cnn-'));
    await expect(verifiedCnn('float', dir)).rejects.toThrow(/npm run models:prepare/);
  });

  it('a provider that cannot load falls back to the CPU and says why', async () => {
    const lines: string[] = [];
    // This machine has no CUDA libraries, so asking for CUDA first exercises the fallback for real.
    const session = await CnnSession.open(cnnModelPath('qdq'), await verifiedCnn('qdq'), {
      providers: ['cuda', 'cpu'],
      log: (l) => lines.push(l),
      threads: 1,
    });
    expect(session.provider).toBe('cpu');
    expect(lines.join('\n')).toMatch(/cpu execution provider \(cuda unavailable: /);
    await session.close();
  });
});
