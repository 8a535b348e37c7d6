import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelError } from '../errors.ts';
import { type JointManifest, MANIFEST_FILE } from '../joint/index.ts';

/**
 * A model directory's file, checked against the manifest's sha256 and size before it is read for weights:
 * an explanation computed from other weights than the search used would be a confident lie.
 */
export async function readVerifiedFile(
  modelDir: string,
  manifest: JointManifest,
  name: string,
): Promise<Uint8Array> {
  const file = join(modelDir, name);
  const expected = manifest.files[name];
  if (!expected)
    throw new ModelError('invalid-model', join(modelDir, MANIFEST_FILE), `lists no sha256 for ${name}`);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (cause) {
    throw new ModelError('missing', file, `the model directory lacks ${name}, which manifest.json lists`, {
      cause,
    });
  }
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== expected.sha256 || bytes.length !== expected.bytes)
    throw new ModelError(
      'sha256-mismatch',
      file,
      `this file is not the one the model was exported with (sha256 ${actual}); re-export or restore the model directory`,
    );
  return bytes;
}
