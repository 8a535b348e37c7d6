// Rebuilds models/concepts/lexicon.json from WordNet 3.0 (Debian wordnet-base), EDICT (Debian edict) and
// ../shared/models/imagenet_synsets.txt. The result is committed; the lexicon test checks it against WordNet.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { buildLexiconFromFiles, EDICT_FILE, WORDNET_DIR } from '../src-main/engine/concepts/build.ts';
import { CONCEPT_LEXICON_FILE } from '../src-main/engine/concepts/index.ts';
import { sharedDir } from '../src-main/engine/paths.ts';

const shared = sharedDir();
const synsets = process.argv[2] ?? (shared ? join(shared, 'models', 'imagenet_synsets.txt') : '');
for (const [file, how] of [
  [join(WORDNET_DIR, 'data.noun'), 'apt-get install wordnet-base'],
  [EDICT_FILE, 'apt-get install edict'],
  [synsets, 'pass the path of imagenet_synsets.txt'],
] as const)
  if (!file || !existsSync(file)) {
    console.error(`concepts:build: ${file || 'imagenet_synsets.txt'} is missing (${how})`);
    process.exit(1);
  }
const lexicon = await buildLexiconFromFiles(synsets);
await mkdir(dirname(CONCEPT_LEXICON_FILE), { recursive: true });
await writeFile(CONCEPT_LEXICON_FILE, `${JSON.stringify(lexicon)}\n`);
console.log(
  `concepts:build: ${CONCEPT_LEXICON_FILE}: ${lexicon.synsets.length} synsets, ${Object.keys(lexicon.lemmas).length} lemmas, ` +
    `${Object.keys(lexicon.exceptions).length} plural exceptions, ${Object.keys(lexicon.ja).length} Japanese words`,
);
