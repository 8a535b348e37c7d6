import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SagasuError } from '../errors.ts';
import { sharedDir } from '../paths.ts';

export type Flickr8kSplit = 'train' | 'val' | 'test';

const SPLIT_FILES: Record<Flickr8kSplit, string> = {
  train: 'Flickr_8k.trainImages.txt',
  val: 'Flickr_8k.devImages.txt',
  test: 'Flickr_8k.testImages.txt',
};

/** The Flickr8k folder of the shared data (SAGASU_FLICKR8K overrides), or undefined when absent. */
export function flickr8kDir(): string | undefined {
  if (process.env.SAGASU_FLICKR8K) return process.env.SAGASU_FLICKR8K;
  const shared = sharedDir();
  return shared ? join(shared, 'data', 'flickr8k') : undefined;
}

export function requireFlickr8kDir(): string {
  const dir = flickr8kDir();
  if (!dir)
    throw new SagasuError(
      'missing-dataset',
      'flickr8k',
      'the Flickr8k folder was not found: set SAGASU_FLICKR8K or SAGASU_SHARED',
    );
  return dir;
}

/** Image file names of one official split, in file order. */
export async function readSplit(split: Flickr8kSplit, dir = requireFlickr8kDir()): Promise<string[]> {
  const text = await readFile(join(dir, SPLIT_FILES[split]), 'utf8');
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
}

/** Paths of the 224x224 copies of one split's images. */
export async function splitImagePaths(split: Flickr8kSplit, dir = requireFlickr8kDir()): Promise<string[]> {
  return (await readSplit(split, dir)).map((name) => join(dir, 'images', name));
}
