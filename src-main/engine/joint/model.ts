import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ArgumentError, ModelError } from '../errors.ts';
import { type JointManifest, MANIFEST_FILE, manifestSha256, readJointManifest } from '../modelfiles/index.ts';
import { modelsDir } from '../paths.ts';
import {
  detectLanguage,
  LANGUAGES,
  type Language,
  type SentenceAnalysis,
  SentenceEncoder,
  type SentenceEncoderOptions,
} from '../text/index.ts';
import { type ImageInput, ImageProjection, type ImageProjectionOptions } from './projection.ts';

/** Where committed joint models live, one directory each. */
export const jointModelsDir = join(modelsDir, 'joint');

type JointModelOptions = SentenceEncoderOptions &
  ImageProjectionOptions & {
    /**
     * The language `model.text` reads (default 'en'): code written against one encoder (evaluation) gets
     * that language's; encodeSentences still takes any language.
     */
    textLanguage?: Language;
  };

/** The encoder a sentence goes to: a language, or 'auto' (by its script, see detectLanguage). */
type SentenceLanguage = Language | 'auto';

interface EncodeSentencesOptions {
  /** Default 'en', as before there was more than one language. */
  lang?: SentenceLanguage;
}

interface LanguageAnalysis extends SentenceAnalysis {
  /** The encoder that reads the sentence ('auto' resolved). */
  lang: Language;
}

/** A sentence encoder of another language found beside the model, or why it cannot serve this model. */
interface Companion {
  dir: string;
  /** Set when the encoder was trained against another version of this model's image side. */
  refused?: string;
}

function checkLanguage(lang: unknown): SentenceLanguage {
  if (lang === 'auto' || LANGUAGES.includes(lang as Language)) return lang as SentenceLanguage;
  throw new ArgumentError(
    'lang',
    `expected ${[...LANGUAGES, 'auto'].join(', ')}, got ${JSON.stringify(lang)}`,
  );
}

/**
 * Both halves of one exported joint space: sentences and images -> comparable unit vectors (score = dot).
 *
 * The model's own text encoder is English. A sentence encoder of another language that was trained into
 * this space (a text-only model directory beside this one whose manifest names this model, by the sha256 of
 * its manifest.json, as its `imageModel`) serves that language: every photo already embedded answers it,
 * nothing is re-embedded. Such encoders are found at open and opened on first use.
 */
export class JointModel {
  private readonly opened = new Map<Language, Promise<SentenceEncoder>>();

  private textEncoder: SentenceEncoder;

  private constructor(
    readonly dir: string,
    english: SentenceEncoder,
    readonly image: ImageProjection,
    private readonly companions: ReadonlyMap<Language, Companion>,
    private readonly options: JointModelOptions,
  ) {
    this.textEncoder = english;
    this.opened.set('en', Promise.resolve(english));
  }

  /** The sentence encoder of `options.textLanguage` (English unless asked otherwise). */
  get text(): SentenceEncoder {
    return this.textEncoder;
  }

  static async open(modelDir: string, options: JointModelOptions = {}): Promise<JointModel> {
    const text = await SentenceEncoder.open(modelDir, options);
    let image: ImageProjection;
    try {
      image = await ImageProjection.open(modelDir, options);
    } catch (error) {
      await text.close();
      throw error;
    }
    // Both read the same manifest; a directory edited between the two reads is not one model.
    if (image.manifest.dim !== text.manifest.dim || image.manifest.name !== text.manifest.name) {
      await Promise.all([text.close(), image.close()]);
      throw new ModelError(
        'invalid-model',
        join(modelDir, MANIFEST_FILE),
        'changed while the model was opening',
      );
    }
    let companions: Map<Language, Companion>;
    try {
      companions = await findCompanions(modelDir, image.manifest);
    } catch (error) {
      await Promise.all([text.close(), image.close()]);
      throw error;
    }
    const model = new JointModel(modelDir, text, image, companions, options);
    if (options.textLanguage && options.textLanguage !== 'en') {
      try {
        model.textEncoder = await model.encoder(options.textLanguage);
      } catch (error) {
        await model.close();
        throw error;
      }
    }
    return model;
  }

  get manifest(): JointManifest {
    return this.image.manifest;
  }

  get name(): string {
    return this.manifest.name;
  }

  get dim(): number {
    return this.manifest.dim;
  }

  /** Languages a sentence can be written in: English, and each encoder trained into this space. */
  get languages(): Language[] {
    return LANGUAGES.filter(
      (l) => l === 'en' || (this.companions.has(l) && !this.companions.get(l)?.refused),
    );
  }

  /** The sentence encoder of a language, opened on first use (Japanese: this loads the dictionary). */
  encoder(lang: Language): Promise<SentenceEncoder> {
    checkLanguage(lang);
    const open = this.opened.get(lang);
    if (open) return open;
    const companion = this.companions.get(lang);
    if (!companion || companion.refused)
      return Promise.reject(
        new ArgumentError(
          'lang',
          companion?.refused ??
            `the model ${this.name} has no ${lang} sentence encoder (languages: ${this.languages.join(', ')})`,
        ),
      );
    const opening = SentenceEncoder.open(companion.dir, this.options).then(async (encoder) => {
      if (encoder.dim !== this.dim || encoder.language !== lang) {
        await encoder.close();
        throw new ModelError(
          'invalid-model',
          join(companion.dir, MANIFEST_FILE),
          `is a ${encoder.language} encoder of dimension ${encoder.dim}; ${this.name} needs ${lang}, ${this.dim}`,
        );
      }
      return encoder;
    });
    // A failed open is not kept: the next query tries again (e.g. after the files are restored).
    opening.catch(() => this.opened.delete(lang));
    this.opened.set(lang, opening);
    return opening;
  }

  /**
   * Row-major [texts.length, dim]; see SentenceEncoder.encode for sentences without words. `lang` picks the
   * encoder for all texts, or 'auto' picks one per text by its script ("iPhoneで撮った犬" is Japanese).
   */
  async encodeSentences(
    texts: readonly string[],
    options: EncodeSentencesOptions = {},
  ): Promise<Float32Array> {
    const lang = checkLanguage(options.lang ?? 'en');
    if (lang !== 'auto') return (await this.encoder(lang)).encode(texts);
    const groups = new Map<Language, number[]>();
    for (const [k, text] of texts.entries()) {
      const l = detectLanguage(text);
      groups.set(l, [...(groups.get(l) ?? []), k]);
    }
    const out = new Float32Array(texts.length * this.dim);
    for (const [l, members] of groups) {
      const encoder = await this.encoder(l);
      const ids = members.map((k) => {
        const t = encoder.tokenIds(texts[k] as string);
        if (t.length === 0)
          throw new ArgumentError(
            'sentence',
            `${texts.length > 1 ? `#${k + 1} ` : ''}${JSON.stringify(texts[k])} has no words to search for (only spaces, punctuation or symbols)`,
          );
        return t;
      });
      const vectors = await encoder.encodeIds(ids);
      for (const [row, k] of members.entries())
        out.set(vectors.subarray(row * this.dim, (row + 1) * this.dim), k * this.dim);
    }
    return out;
  }

  /** What an encoder makes of a sentence: its tokens and those the vocabulary lacks (for an "unknown words" note). */
  async analyzeSentence(text: string, lang: SentenceLanguage = 'auto'): Promise<LanguageAnalysis> {
    const chosen = checkLanguage(lang);
    const resolved = chosen === 'auto' ? detectLanguage(text) : chosen;
    return { lang: resolved, ...(await this.encoder(resolved)).analyze(text) };
  }

  /** The vector of a sentence analyzeSentence read: its token ids go to the network as they are, not read again. */
  async encodeAnalysis(analysis: LanguageAnalysis): Promise<Float32Array> {
    return (await this.encoder(analysis.lang)).encodeIds([analysis.ids]);
  }

  /** Row-major [images.length, dim]. */
  embedImages(images: readonly ImageInput[]): Promise<Float32Array> {
    return this.image.embed(images);
  }

  async close(): Promise<void> {
    const encoders = await Promise.allSettled([...this.opened.values()]);
    await Promise.all([
      ...encoders.flatMap((r) => (r.status === 'fulfilled' ? [r.value.close()] : [])),
      this.image.close(),
    ]);
  }
}

interface ManifestHead {
  imageModel?: { name?: string; manifestSha256?: string };
  language?: string;
}

async function readHead(dir: string): Promise<ManifestHead | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')) as ManifestHead;
  } catch {
    return undefined;
  }
}

/** Text-only encoders beside `modelDir` that name this model as their image side. */
async function findCompanions(modelDir: string, manifest: JointManifest): Promise<Map<Language, Companion>> {
  const ownSha = manifestSha256(modelDir);
  const found = new Map<Language, Companion>();
  for (const dir of await listModelDirs(dirname(modelDir))) {
    if (basename(dir) === basename(modelDir)) continue;
    const head = await readHead(dir);
    if (head?.imageModel?.name !== manifest.name) continue;
    const encoder = await readJointManifest(dir);
    const lang = encoder.language;
    if (!lang || lang === 'en' || found.has(lang)) continue;
    found.set(
      lang,
      encoder.imageModel?.manifestSha256 === ownSha
        ? { dir }
        : {
            dir,
            refused: `the ${lang} encoder in ${dir} was trained against another version of ${manifest.name} (its manifest.json sha256 differs); retrain or export it again for this one`,
          },
    );
  }
  return found;
}

async function listModelDirs(dir: string): Promise<string[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const found: string[] = [];
  for (const e of entries.filter((e) => e.isDirectory()).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const files = await readdir(join(dir, e.name)).catch(() => [] as string[]);
    if (files.includes(MANIFEST_FILE)) found.push(join(dir, e.name));
  }
  return found;
}

/**
 * Joint models (an image side and an English text encoder) under `dir`, sorted by name; none when `dir` does
 * not exist. Text-only encoders of other languages are left out: they are reached through their model.
 */
export async function listJointModels(dir = jointModelsDir): Promise<string[]> {
  const found: string[] = [];
  for (const model of await listModelDirs(dir)) if (!(await readHead(model))?.imageModel) found.push(model);
  return found;
}

/** Text-only sentence encoders under `dir` (each names the joint model whose space it was trained into). */
export async function listTextEncoders(dir = jointModelsDir): Promise<string[]> {
  const found: string[] = [];
  for (const model of await listModelDirs(dir)) if ((await readHead(model))?.imageModel) found.push(model);
  return found;
}
