/**
 * npm run captions:bank — writes models/captions/flickr8k-en.txt, the shipped auto-caption bank: the English
 * captions of the Flickr8k TRAIN and VALIDATION images (never test: the test split scores the models), cleaned
 * for display, deduplicated, one per line. Only texts ship; their vectors are computed at first use.
 * The Japanese captions are machine translations without a stated license and never ship.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import { runCommand } from '../src-main/cli/run.ts';
import { readCaptions, readSplit } from '../src-main/engine/datasets/flickr8k.ts';
import { DEFAULT_CAPTION_BANK } from '../src-main/engine/describe/bank.ts';
import { captionKey, cleanCaption, words } from '../src-main/engine/describe/words.ts';
import { projectRoot } from '../src-main/engine/paths.ts';

await runCommand('captions:bank', async () => {
  const images = new Set([...(await readSplit('train')), ...(await readSplit('val'))]);
  const { captions } = await readCaptions(undefined, (line) => console.error(line));
  const seen = new Set<string>();
  const out: string[] = [];
  let duplicates = 0;
  let tooShort = 0;
  for (const c of captions) {
    if (!images.has(c.image)) continue;
    const text = cleanCaption(c.text);
    // "A" and "a" are whole captions in the token file: nothing to describe a photo with.
    if (words(text).length < 2) {
      tooShort++;
      continue;
    }
    const key = captionKey(text);
    if (seen.has(key)) {
      duplicates++;
      continue;
    }
    seen.add(key);
    out.push(text);
  }
  await mkdir(dirname(DEFAULT_CAPTION_BANK), { recursive: true });
  await writeFile(DEFAULT_CAPTION_BANK, `${out.join('\n')}\n`);
  console.log(
    `captions:bank: ${out.length} captions of ${images.size} train+val images in ${relative(projectRoot, DEFAULT_CAPTION_BANK)} (${duplicates} duplicates and ${tooShort} one-word captions left out)`,
  );
});
