import type { Output, ParsedInput } from '../../contract/index.ts';
import { imagenetClassProbs } from '../cnn/index.ts';
import { ConceptLexicon, conceptTags } from '../concepts/index.ts';
import { CaptionBank, LayerExplainer, tagsFor } from '../describe/index.ts';
import { ArgumentError, ImageError, SagasuError } from '../errors.ts';
import type { FneExtractor } from '../fne/index.ts';
import type { JointModel } from '../joint/index.ts';
import type { Library } from '../library/index.ts';
import { indexedImage, indexedVector } from './catalogue.ts';

/** What the CNN and the joint space say about a photo: its captions and tags, and why it matches a sentence. */
export class Descriptions {
  private bank: Promise<CaptionBank> | null = null;
  private explainer: Promise<LayerExplainer> | null = null;
  private lexicon: Promise<ConceptLexicon> | null = null;

  constructor(
    private readonly library: Library,
    private readonly model: JointModel,
    private readonly extractor: FneExtractor,
    /** A caption bank of the user's own instead of the shipped one. */
    private readonly captionBankFile: string | undefined,
    /** Called with a photo whose stored descriptions changed. */
    private readonly described: (imageId: number) => void,
  ) {}

  async features(path: string): Promise<{ fne: Int8Array; oneLayer: Float32Array; probs: Float32Array }> {
    for await (const result of this.extractor.extract([path])) {
      if (!result.ok) throw result.error;
      const { fne, oneLayer, probs } = result.features;
      if (!fne)
        throw new SagasuError('no-statistics', path, 'the FNE statistics are missing (npm run setup)');
      // The one-layer model set embeds oneLayer; the others the FNE.
      return { fne, oneLayer, probs: imagenetClassProbs(probs) };
    }
    throw new ArgumentError('path', `${path}: nothing was extracted`);
  }

  async embedFile(path: string): Promise<Float32Array> {
    return this.model.embedImages([await this.features(path)]);
  }

  async describe(imageId: number, refresh: boolean): Promise<Output<'image.describe'>> {
    const existing = this.library.catalog.descriptions(imageId);
    const hasAuto =
      existing.captions.some((c) => c.source === 'auto') || existing.tags.some((t) => t.source === 'auto');
    if (hasAuto && !refresh) return existing;
    const vector = indexedVector(this.library, imageId);
    const [bank, lexicon] = await Promise.all([this.captionBank(), this.conceptLexicon()]);
    // The concept tags need the photo's class probabilities, from one CNN pass over the file; a photo that
    // cannot be read now (moved, its disk offline) still gets the tags of its stored vector.
    const probs = await this.features(indexedImage(this.library, imageId).path).then(
      (f) => f.probs,
      (error: unknown) => {
        if (error instanceof ImageError) return null;
        throw error;
      },
    );
    const { captions, tags } = autoDescriptions(bank, lexicon, vector, probs);
    this.library.catalog.setAutoDescriptions(imageId, captions, tags);
    this.described(imageId);
    return this.library.catalog.descriptions(imageId);
  }

  /** An outside file's captions and tags: computed, not stored (id 0: nothing to review). */
  async describeFile(path: string): Promise<Output<'image.describe'>> {
    const [features, bank, lexicon] = await Promise.all([
      this.features(path),
      this.captionBank(),
      this.conceptLexicon(),
    ]);
    const vector = await this.model.embedImages([features]);
    const { captions, tags } = autoDescriptions(bank, lexicon, vector, features.probs);
    const proposed = <T>(d: T) => ({ id: 0, ...d, source: 'auto', status: 'proposed' }) as const;
    return { captions: captions.map(proposed), tags: tags.map(proposed) };
  }

  conceptLexicon(): Promise<ConceptLexicon> {
    this.lexicon ??= ConceptLexicon.load().catch((error) => {
      this.lexicon = null;
      throw error;
    });
    return this.lexicon;
  }

  private captionBank(): Promise<CaptionBank> {
    this.bank ??= CaptionBank.open(
      this.model,
      this.captionBankFile === undefined ? {} : { file: this.captionBankFile },
    ).catch((error) => {
      this.bank = null;
      throw error;
    });
    return this.bank;
  }

  async explain(args: ParsedInput<'image.explain'>): Promise<Output<'image.explain'>> {
    const image = indexedImage(this.library, args.imageId);
    const [{ fne }, sentence] = await Promise.all([
      this.features(image.path),
      this.model.encodeSentences([args.query], { lang: args.lang }),
    ]);
    this.explainer ??= LayerExplainer.open(this.model.dir);
    return (await this.explainer).explain(fne, sentence);
  }
}

/**
 * The caption tags and the concept tags as one list, best first: a word both propose keeps its higher
 * confidence ("dog" from the captions and from the classifier).
 */
function withConceptTags(
  tags: ReadonlyArray<{ text: string; confidence: number }>,
  concepts: ReadonlyArray<{ text: string; confidence: number }>,
): Array<{ text: string; confidence: number }> {
  const best = new Map<string, number>();
  for (const t of [...tags, ...concepts]) best.set(t.text, Math.max(best.get(t.text) ?? 0, t.confidence));
  return [...best]
    .map(([text, confidence]) => ({ text, confidence }))
    .sort((a, b) => b.confidence - a.confidence || (a.text < b.text ? -1 : 1));
}

/** A photo's proposed captions and tags: from its vector, and concept tags from its classes when there are any. */
function autoDescriptions(
  bank: CaptionBank,
  lexicon: ConceptLexicon,
  vector: Float32Array,
  probs: Float32Array | null,
) {
  return {
    captions: bank.captionsFor(vector, 5),
    tags: withConceptTags(tagsFor(bank, vector), probs ? conceptTags(lexicon, probs) : []),
  };
}
