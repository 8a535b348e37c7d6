/**
 * Child half of the disk-full test: run under `ulimit -f` with SIGXFSZ ignored, so a write past the limit
 * fails (EFBIG) the way a full disk fails it (ENOSPC), in the middle of a regular file. Saves a small index
 * (fits), grows it past the limit, saves again, and prints one JSON line with what happened.
 * Usage: node --import <tsx loader URL> library-save-child.ts <dir>
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SagasuError } from '../../src-main/engine/errors.ts';
import { VectorIndex } from '../../src-main/engine/library/index.ts';
import { unitVector } from './library-vectors.ts';

const dir = process.argv[2];
if (!dir) throw new Error('usage: library-save-child.ts <dir>');
const file = join(dir, 'vectors.hnsw');
const sha = () => createHash('sha256').update(readFileSync(file)).digest('hex');
const index = VectorIndex.create(64, 100);
for (let i = 1; i <= 100; i++) index.upsert(i, unitVector(64, i));
const first = index.save(file);
const before = sha();
for (let i = 101; i <= 3000; i++) index.upsert(i, unitVector(64, i));
let error: { code: string; message: string } | null = null;
try {
  index.save(file);
} catch (e) {
  if (!(e instanceof SagasuError)) throw e;
  error = { code: e.code, message: e.message };
}
const reloaded = VectorIndex.load(file, 64, first);
console.log(
  JSON.stringify({ error, intact: sha() === before, firstBytes: first.bytes, reloadedSize: reloaded.size }),
);
