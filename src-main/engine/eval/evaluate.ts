import { ArgumentError } from '../errors.ts';
import type { ImageInput, JointModel } from '../joint/index.ts';
import type { FeatureKind } from '../modelfiles/index.ts';
import { evaluateRetrieval, type RetrievalMetrics, type RetrievalRanks } from './protocol.ts';
import { evaluateSearch, type SearchSetup } from './search.ts';

/** Photos with their captions: Flickr8k's test split, or anyone's captioned photos. */
export interface CaptionedImages {
  images: readonly ImageInput[];
  /** Each caption names the position of its photo in `images`. */
  captions: readonly { text: string; image: number }[];
}

export interface JointEvaluation extends RetrievalMetrics {
  model: string;
  features: FeatureKind;
  dim: number;
  /** Images and captions that were ranked. */
  images: number;
  captions: number;
  skipped: {
    /** Captions with no words (nothing for the encoder to read). */
    emptyCaptions: number;
    /** Images left with no caption once those were skipped: annotation cannot rank them. */
    uncaptionedImages: number;
  };
  /** Per query, in the order of the ranked images and captions (skipped ones left out). */
  ranks: RetrievalRanks;
  /** Index into the input of each ranked image and caption. */
  rankedImages: Int32Array;
  rankedCaptions: Int32Array;
  seconds: { text: number; image: number; ranking: number };
  /** The app's fused ranking on the same vectors, when asked for. */
  search?: RetrievalMetrics;
}

/**
 * The paper's evaluation of one joint model: captions through the model's sentence encoder (the app's own
 * tokenizer), images through its projection, then both directions ranked (protocol.ts).
 */
export async function evaluateJointModel(
  model: JointModel,
  data: CaptionedImages,
  /** Also rank by search's fused score: the concepts and weights, and each input image's class probabilities. */
  search?: { setup: SearchSetup; probs: readonly Float32Array[] },
): Promise<JointEvaluation> {
  const t0 = performance.now();
  const ids: Int32Array[] = [];
  const keptCaptions: number[] = [];
  let emptyCaptions = 0;
  const captioned = new Uint8Array(data.images.length);
  for (const [k, caption] of data.captions.entries()) {
    if (!Number.isInteger(caption.image) || caption.image < 0 || caption.image >= data.images.length)
      throw new ArgumentError(
        'captions',
        `caption ${k} points at image ${caption.image}, outside 0..${data.images.length - 1}`,
      );
    const t = model.text.tokenIds(caption.text);
    if (t.length === 0) {
      emptyCaptions++;
      continue;
    }
    ids.push(t);
    keptCaptions.push(k);
    captioned[caption.image] = 1;
  }
  const rankedImages: number[] = [];
  const rowOf = new Int32Array(data.images.length).fill(-1);
  for (let i = 0; i < data.images.length; i++)
    if (captioned[i]) {
      rowOf[i] = rankedImages.length;
      rankedImages.push(i);
    }
  const captionImage = Int32Array.from(
    keptCaptions,
    (k) => rowOf[(data.captions[k] as { image: number }).image] as number,
  );

  const captions = await model.text.encodeIds(ids);
  const t1 = performance.now();
  const images = await model.image.embed(rankedImages.map((i) => data.images[i] as ImageInput));
  const t2 = performance.now();
  const result = await evaluateRetrieval({ images, captions, captionImage, dim: model.dim });
  const t3 = performance.now();
  const fused = search
    ? await evaluateSearch(
        { images, captions, captionImage, dim: model.dim },
        keptCaptions.map((k) => (data.captions[k] as { text: string }).text),
        'en',
        rankedImages.map((i) => search.probs[i] as Float32Array),
        search.setup,
        model.text,
      )
    : undefined;
  return {
    model: model.name,
    features: model.manifest.features,
    dim: model.dim,
    images: rankedImages.length,
    captions: keptCaptions.length,
    skipped: { emptyCaptions, uncaptionedImages: data.images.length - rankedImages.length },
    i2t: result.i2t,
    t2i: result.t2i,
    rsum: result.rsum,
    ranks: result.ranks,
    rankedImages: Int32Array.from(rankedImages),
    rankedCaptions: Int32Array.from(keptCaptions),
    seconds: { text: (t1 - t0) / 1000, image: (t2 - t1) / 1000, ranking: (t3 - t2) / 1000 },
    ...(fused ? { search: { i2t: fused.i2t, t2i: fused.t2i, rsum: fused.rsum } } : {}),
  };
}
