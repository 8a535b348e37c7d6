import { EventEmitter } from 'node:events';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { extname, isAbsolute, join, relative, resolve } from 'node:path';
import sharp from 'sharp';
import {
  type Caption,
  type Events,
  type Hit,
  type IndexProgress,
  type Input,
  type Method,
  type Output,
  type ParsedInput,
  parseInput,
  type SagasuApi,
  type SearchFilters,
  type SearchPage,
} from '../../contract/index.ts';
import { imagenetClassProbs } from '../cnn/index.ts';
import { ConceptLexicon, conceptTags } from '../concepts/index.ts';
import {
  CaptionBank,
  exportRows,
  isStopWord,
  LayerExplainer,
  loadSearchCalibration,
  tagsFor,
  XmpWriter,
} from '../describe/index.ts';
import { ArgumentError, ImageError, SagasuError } from '../errors.ts';
import { FneExtractor } from '../fne/index.ts';
import {
  conceptScores,
  conceptWeight,
  type FusionWeights,
  fusedScore,
  topRows,
  unknownShare,
  unseenWords,
  zNormalize,
} from '../fusion/index.ts';
import { readPhotoFile } from '../image/index.ts';
import { JointModel, jointModelsDir } from '../joint/index.ts';
import { type ImageRecord, idleProgress, Library, PHOTO_EXTENSIONS } from '../library/index.ts';

export interface EngineOptions {
  /** Where the catalog, the vector index and the thumbnails live. */
  libraryDir: string;
  /** The joint model (default models/joint/fne). */
  modelDir?: string;
  /** A caption bank of the user's own (one caption per line) instead of the shipped Flickr8k one. */
  captionBank?: string;
  /** Sidecar naming for XMP: `photo.jpg.xmp` (default, what darktable and digiKam write) or `photo.xmp`. */
  xmpNaming?: 'photo.jpg.xmp' | 'photo.xmp';
  /** Keep the catalog current while this engine runs (the app's doors; a one-shot CLI command does not). */
  watch?: boolean;
  /** The concept lexicon (default models/concepts/lexicon.json). */
  conceptLexicon?: string;
}

/** What a door holds: the contract, plus the bytes the contract cannot carry as JSON. */
export interface EngineHost extends SagasuApi {
  /** A JPEG thumbnail (longest side `size` px) or the original file of an INDEXED photo. */
  media(imageId: number, kind: 'thumb' | 'full', size?: number): Promise<{ bytes: Buffer; type: string }>;
  /** Resolves when no indexing job runs (at once when idle). */
  whenIdle(): Promise<IndexProgress>;
  close(): Promise<void>;
}

/** Ranked hits are kept per query, so paging and scrolling do not search again. */
interface RankedQuery {
  key: string;
  hits: Hit[];
  /** More candidates may exist beyond `hits` (the candidate fetch was full). */
  more: boolean;
  fetched: number;
  page: Omit<SearchPage, 'hits' | 'total'>;
}

const FIRST_FETCH = 1000;
const KEYWORD_LIMIT = 200;
/** Without fitted fusion weights: a literal match on a file or tag name lifts a photo above vector matches. */
const KEYWORD_BONUS = 0.1;
/** Photos taken into the ranking for their concept score alone (beside the nearest by joint cosine). */
const CONCEPT_CANDIDATES = 500;

/** How search ranks: the fused score and its cutoff when models/search.json has them, else the cosine's. */
interface Ranking {
  cutoff: number | null;
  fusion: { weights: FusionWeights; lexicon: ConceptLexicon } | null;
  /** Why concepts are off (said once per query in the page's note), or null. */
  off: string | null;
}
const THUMB_SIZES = [128, 256, 512, 1024] as const;

const MIME: Record<string, string> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
  '.avif': 'image/avif',
  '.heic': 'image/heic',
};

/** What media may serve, by the format sharp reads from the bytes (AVIF and HEIC are both HEIF to it). */
const SERVED_FORMATS: Record<string, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  tiff: 'image/tiff',
  heif: 'image/heif',
};

/** The in-process engine: the library, the models and the describe room behind the one contract. */
export class Engine implements EngineHost {
  private readonly events = new EventEmitter();
  private job: Promise<IndexProgress> | null = null;
  private ranked: RankedQuery | null = null;
  private bank: Promise<CaptionBank> | null = null;
  private explainer: Promise<LayerExplainer> | null = null;
  private lexicon: Promise<ConceptLexicon> | null = null;

  private constructor(
    private readonly options: EngineOptions,
    private readonly library: Library,
    private readonly model: JointModel,
    private readonly extractor: FneExtractor,
    private readonly ranking: Ranking,
  ) {}

  private get cutoff(): number | null {
    return this.ranking.cutoff;
  }

  static async open(options: EngineOptions): Promise<Engine> {
    const modelDir = options.modelDir ?? join(jointModelsDir, 'fne');
    const model = await JointModel.open(modelDir);
    const extractor = await FneExtractor.open();
    let library: Library;
    try {
      library = await Library.open({ dir: options.libraryDir, model, extractor });
    } catch (error) {
      await Promise.all([model.close(), extractor.close()]);
      throw error;
    }
    // With the model's directory, a retrained model of the same name does not inherit an old cutoff.
    const calibration = await loadSearchCalibration(model.name, { modelDir: model.dir });
    const ranking: Ranking = { cutoff: calibration?.cutoff ?? null, fusion: null, off: null };
    if (calibration?.fusion) {
      try {
        const lexicon = await ConceptLexicon.load(options.conceptLexicon);
        Object.assign(ranking, {
          cutoff: calibration.fusion.cutoff,
          fusion: { weights: calibration.fusion.weights, lexicon },
        });
      } catch (error) {
        // A damaged lexicon costs the concepts, not search: the joint score and its own cutoff still rank.
        if (!(error instanceof SagasuError)) throw error;
        ranking.off = `Concepts are off: ${error.message}`;
      }
    }
    const engine = new Engine(options, library, model, extractor, ranking);
    if (options.watch) await library.watch((imageIds) => engine.changed(imageIds));
    return engine;
  }

  /** Files changed on disk were indexed by the watcher: rankings are stale, open views may refresh. */
  private changed(imageIds: number[]): void {
    this.ranked = null;
    this.emit('library.changed', { imageIds });
  }

  on<E extends keyof Events>(event: E, listener: (payload: Events[E]) => void): () => void {
    this.events.on(event, listener);
    return () => this.events.off(event, listener);
  }

  private emit<E extends keyof Events>(event: E, payload: Events[E]): void {
    this.events.emit(event, payload);
  }

  async invoke<M extends Method>(method: M, input: Input<M>): Promise<Output<M>> {
    const args = parseInput(method, input);
    return (await this.dispatch(method, args)) as Output<M>;
  }

  private async dispatch(method: Method, args: ParsedInput<Method>): Promise<Output<Method>> {
    const a = args as Record<string, unknown>;
    switch (method) {
      case 'status':
        return this.status();
      case 'roots.add': {
        const root = this.library.addRoot(a.path as string);
        this.emit('library.changed', { imageIds: null });
        return root;
      }
      case 'roots.remove': {
        const removed = this.library.removeRoot(a.rootId as number);
        this.ranked = null;
        this.emit('library.changed', { imageIds: null });
        return removed;
      }
      case 'index.start':
        return this.startIndexing(a.rootId as number | undefined, a.removeMissing as boolean);
      case 'index.pause':
        this.library.pause();
        return this.progress();
      case 'index.resume':
        this.library.resume();
        return this.progress();
      case 'index.cancel':
        this.library.cancel();
        return this.progress();
      case 'search':
        return this.search(args as ParsedInput<'search'>);
      case 'similar':
        return this.similar(args as ParsedInput<'similar'>);
      case 'image.get':
        return this.imageDetails(a.imageId as number);
      case 'image.describe':
        return a.path === undefined
          ? this.describe(a.imageId as number, a.refresh as boolean)
          : this.describeFile(a.path as string);
      case 'image.explain':
        return this.explain(args as ParsedInput<'image.explain'>);
      case 'caption.review':
        return this.library.reviewCaption(
          a.imageId as number,
          a.captionId as number,
          a.status as Caption['status'],
        );
      case 'caption.add':
        return this.library.addCaption(a.imageId as number, a.text as string);
      case 'tag.review':
        return this.library.reviewTag(a.imageId as number, a.tagId as number, a.status as Caption['status']);
      case 'tag.add':
        return this.library.addTag(a.imageId as number, a.text as string);
      case 'xmp.write':
        return this.writeXmp((a.imageIds as number[] | undefined) ?? this.reviewedImageIds());
      case 'export':
        return this.export(a.format as 'csv' | 'json');
    }
  }

  private progress(): IndexProgress {
    return this.library.progress();
  }

  private status(): Output<'status'> {
    return {
      roots: this.library.roots(),
      images: this.library.counts(),
      failures: this.library.failures(),
      model: { name: this.model.name, dim: this.model.dim, languages: this.model.languages },
      index: this.progress(),
    };
  }

  private startIndexing(rootId: number | undefined, removeMissing = false): IndexProgress {
    if (!this.job) {
      let done = 0;
      let announced = 0;
      this.job = this.library
        .index({
          ...(rootId === undefined ? {} : { rootId }),
          removeMissing,
          onProgress: (p) => {
            this.emit('index.progress', p);
            if (p.done === done) return;
            // New photos are searchable as soon as their batch is stored: a repeated query must see them, and
            // open views may refresh (at most once a second, not once a batch).
            done = p.done;
            this.ranked = null;
            if (Date.now() - announced >= 1000) {
              announced = Date.now();
              this.emit('library.changed', { imageIds: null });
            }
          },
        })
        .then((p) => {
          this.ranked = null;
          this.emit('library.changed', { imageIds: null });
          return p;
        })
        .finally(() => {
          this.job = null;
        });
      // A failure reaches the person through the progress state and `whenIdle`; never as an unhandled rejection.
      this.job.catch(() => {});
    }
    return this.progress();
  }

  async whenIdle(): Promise<IndexProgress> {
    return this.job ? await this.job : this.progress();
  }

  private image(imageId: number): ImageRecord {
    const image = this.library.image(imageId);
    if (!image) throw new SagasuError('not-found', `image ${imageId}`, 'is not in the library');
    return image;
  }

  private imageDetails(imageId: number): Output<'image.get'> {
    const image = this.image(imageId);
    return { ...image, ...this.library.descriptions(imageId) };
  }

  private async search(args: ParsedInput<'search'>): Promise<SearchPage> {
    const cutoff = args.cutoff === undefined ? this.cutoff : args.cutoff;
    const key = JSON.stringify([args.query.trim(), args.lang, args.filters, cutoff]);
    let ranked = this.ranked?.key === key ? this.ranked : null;
    if (!ranked) {
      ranked = await this.rankQuery(key, args.query, args.lang, args.filters, cutoff, FIRST_FETCH);
    }
    while (ranked.more && ranked.hits.length < args.offset + args.k) {
      ranked = await this.rankQuery(key, args.query, args.lang, args.filters, cutoff, ranked.fetched * 4);
    }
    this.ranked = ranked;
    return {
      ...ranked.page,
      hits: ranked.hits.slice(args.offset, args.offset + args.k),
      total: ranked.hits.length,
    };
  }

  private async rankQuery(
    key: string,
    query: string,
    lang: ParsedInput<'search'>['lang'],
    filters: SearchFilters,
    cutoff: number | null,
    fetch: number,
  ): Promise<RankedQuery> {
    const analysis = await this.model.analyzeSentence(query, lang);
    const resolved = analysis.lang;
    const base = {
      cutoff,
      lang: resolved,
      unknownWords: analysis.unknown,
      note: null,
    } as RankedQuery['page'];
    if (analysis.tokens.length === 0) {
      const note = query.trim() ? 'The sentence has no words to search for.' : 'Type a sentence to search.';
      return { key, hits: [], more: false, fetched: 0, page: { ...base, lang: null, note } };
    }
    if (analysis.unknown.length === analysis.tokens.length)
      base.note = `None of the words is known to the model (${analysis.unknown.join(', ')}): results are a guess.`;
    const vector = await this.model.encodeSentences([query], { lang: resolved });
    const allowed = this.library.filterIds(filters);
    const allow = allowed ? (id: number) => allowed.has(id) : undefined;
    const n = Math.min(fetch, this.library.counts().indexed);
    const nearest = this.library.nearest(vector, n, allow);
    const cosines = new Map(nearest.map((h) => [h.imageId, h.score]));
    // File, folder and tag names are matched on the sentence's content words only: "on the" names nothing.
    const content = query
      .split(/\s+/)
      .filter((w) => !/^[\p{Script=Latin}'’-]+$/u.test(w) || !isStopWord(w.toLocaleLowerCase('en')))
      .join(' ');
    const keyword = this.library.keyword(content, KEYWORD_LIMIT).filter((k) => !allow || allow(k.imageId));
    const literal = new Set(keyword.map((k) => k.imageId));
    const concept = await this.conceptTerm(query, resolved, allow, unseenWords(analysis));
    if (this.ranking.off && !base.note) base.note = this.ranking.off;
    const weights = this.ranking.fusion?.weights;
    const keywordWeight = weights?.keyword ?? KEYWORD_BONUS;
    const fused = (id: number, cosine: number) =>
      weights
        ? fusedScore(cosine, concept?.z(id) ?? 0, literal.has(id), weights, concept?.unknownShare ?? 0)
        : cosine + (literal.has(id) ? keywordWeight : 0);
    const candidates = new Set([...cosines.keys(), ...literal, ...(concept?.top ?? [])]);
    const lambda = weights ? conceptWeight(weights, concept?.unknownShare ?? 0) : 0;
    const lastScore = nearest.at(-1)?.score ?? Number.NEGATIVE_INFINITY;
    const hits: Hit[] = [];
    for (const imageId of candidates) {
      let cosine = cosines.get(imageId);
      if (cosine === undefined) {
        // Beyond the fetched nearest its cosine is at most the last one's: skip what cannot reach the cutoff
        // before reading its vector from the catalog.
        const bound = lastScore + lambda * (concept?.z(imageId) ?? 0);
        if (!literal.has(imageId) && cutoff !== null && nearest.length === n && bound < cutoff) continue;
        // Found by name or concept, beyond the nearest: its stored vector still gives the joint score.
        const image = this.library.image(imageId);
        if (!image || !this.library.rootOnline(image.rootId)) continue;
        const stored = this.library.vector(imageId);
        if (!stored) continue;
        cosine = dot(stored, vector);
      }
      const score = fused(imageId, cosine);
      const matched = literal.has(imageId);
      if (!matched && cutoff !== null && score < cutoff) continue;
      hits.push(this.hit(imageId, score, matched ? (cosines.has(imageId) ? 'both' : 'keyword') : 'vector'));
    }
    hits.sort((x, y) => y.score - x.score || x.imageId - y.imageId);
    // Beyond the fetched nearest, a photo can still pass on its concept score: at most λ · zCap above its cosine.
    const lift = weights ? lambda * weights.zCap : 0;
    const more = nearest.length === fetch && (cutoff === null || lastScore + lift >= cutoff);
    return { key, hits, more, fetched: fetch, page: base };
  }

  /**
   * The query's concept z-values for every photo with stored classes (z across the whole library, so a
   * filter does not change a photo's score), and the best-scoring allowed photos as extra candidates.
   * Null when concepts are off or the query names none.
   */
  private async conceptTerm(
    query: string,
    lang: 'en' | 'ja',
    allow: ((id: number) => boolean) | undefined,
    unseen: ReadonlySet<string>,
  ): Promise<{ z: (id: number) => number; top: number[]; unknownShare: number } | null> {
    const fusion = this.ranking.fusion;
    if (!fusion) return null;
    const table = this.library.classes();
    const rows = table.view();
    const terms = await fusion.lexicon.query(query, lang);
    const scores = conceptScores(terms, rows, fusion.weights.floor);
    if (!scores) return null;
    const zs = zNormalize(scores, fusion.weights.zCap);
    const order = topRows(
      zs,
      CONCEPT_CANDIDATES,
      allow ? (row) => allow(rows.ids[row] as number) : undefined,
    );
    return {
      z: (id) => {
        const row = table.row(id);
        return row === undefined ? 0 : (zs[row] as number);
      },
      top: order.slice(0, CONCEPT_CANDIDATES).map((row) => rows.ids[row] as number),
      unknownShare: unknownShare(terms, unseen),
    };
  }

  private hit(imageId: number, score: number, via: Hit['via']): Hit {
    const image = this.image(imageId);
    return {
      imageId,
      path: image.path,
      score,
      width: image.width,
      height: image.height,
      takenAt: image.takenAt,
      via,
    };
  }

  private async similar(args: ParsedInput<'similar'>): Promise<SearchPage> {
    let vector: Float32Array;
    let self: number | undefined;
    if (args.imageId !== undefined) {
      self = args.imageId;
      this.image(self);
      const stored = this.library.vector(self);
      if (!stored)
        throw new SagasuError(
          'not-indexed',
          `image ${self}`,
          'has no embedding yet (still indexing, or it failed)',
        );
      vector = stored;
    } else {
      vector = await this.embedFile(args.path as string);
    }
    const allowed = this.library.filterIds(args.filters);
    const allow = (id: number) => id !== self && (!allowed || allowed.has(id));
    // Every photo is similar to some degree: the whole (filtered) library, nearest first, page by page.
    const candidates =
      (allowed ? allowed.size : this.library.counts().indexed) - (self === undefined ? 0 : 1);
    const n = Math.min(args.offset + args.k, Math.max(candidates, 0));
    const hits = this.library.nearest(vector, n, allow).map((h) => this.hit(h.imageId, h.score, 'vector'));
    return {
      hits: hits.slice(args.offset),
      total: Math.max(candidates, hits.length),
      cutoff: null,
      lang: null,
      unknownWords: [],
      note: null,
    };
  }

  private async features(path: string): Promise<{ fne: Int8Array; probs: Float32Array }> {
    for await (const result of this.extractor.extract([path])) {
      if (!result.ok) throw result.error;
      const { fne, probs } = result.features;
      if (!fne)
        throw new SagasuError('no-statistics', path, 'the FNE statistics are missing (npm run setup)');
      return { fne, probs: imagenetClassProbs(probs) };
    }
    throw new ArgumentError('path', `${path}: nothing was extracted`);
  }

  private async embedFile(path: string): Promise<Float32Array> {
    return this.model.embedImages([await this.features(path)]);
  }

  private async describe(imageId: number, refresh: boolean): Promise<Output<'image.describe'>> {
    const existing = this.library.descriptions(imageId);
    const hasAuto =
      existing.captions.some((c) => c.source === 'auto') || existing.tags.some((t) => t.source === 'auto');
    if (hasAuto && !refresh) return existing;
    this.image(imageId);
    const vector = this.library.vector(imageId);
    if (!vector)
      throw new SagasuError(
        'not-indexed',
        `image ${imageId}`,
        'has no embedding yet (still indexing, or it failed)',
      );
    const [bank, lexicon] = await Promise.all([this.captionBank(), this.conceptLexicon()]);
    // The concept tags need the photo's class probabilities, from one CNN pass over the file; a photo that
    // cannot be read now (moved, its disk offline) still gets the tags of its stored vector.
    const probs = await this.features(this.image(imageId).path).then(
      (f) => f.probs,
      (error: unknown) => {
        if (error instanceof ImageError) return null;
        throw error;
      },
    );
    this.library.setAutoDescriptions(
      imageId,
      bank.captionsFor(vector, 5),
      withConceptTags(tagsFor(bank, vector), probs ? conceptTags(lexicon, probs) : []),
    );
    this.emit('library.changed', { imageIds: [imageId] });
    return this.library.descriptions(imageId);
  }

  /** An outside file's captions and tags: computed, not stored (id 0: nothing to review). */
  private async describeFile(path: string): Promise<Output<'image.describe'>> {
    const [features, bank, lexicon] = await Promise.all([
      this.features(path),
      this.captionBank(),
      this.conceptLexicon(),
    ]);
    const vector = await this.model.embedImages([features]);
    return {
      captions: bank
        .captionsFor(vector, 5)
        .map(({ text, score }) => ({ id: 0, text, score, source: 'auto', status: 'proposed' }) as const),
      tags: withConceptTags(tagsFor(bank, vector), conceptTags(lexicon, features.probs)).map(
        ({ text, confidence }) => ({ id: 0, text, confidence, source: 'auto', status: 'proposed' }) as const,
      ),
    };
  }

  private conceptLexicon(): Promise<ConceptLexicon> {
    this.lexicon ??= ConceptLexicon.load().catch((error) => {
      this.lexicon = null;
      throw error;
    });
    return this.lexicon;
  }

  private captionBank(): Promise<CaptionBank> {
    this.bank ??= CaptionBank.open(
      this.model,
      this.options.captionBank === undefined ? {} : { file: this.options.captionBank },
    ).catch((error) => {
      this.bank = null;
      throw error;
    });
    return this.bank;
  }

  private async explain(args: ParsedInput<'image.explain'>): Promise<Output<'image.explain'>> {
    const image = this.image(args.imageId);
    const [{ fne }, sentence] = await Promise.all([
      this.features(image.path),
      this.model.encodeSentences([args.query], { lang: args.lang }),
    ]);
    this.explainer ??= LayerExplainer.open(this.model.dir);
    return (await this.explainer).explain(fne, sentence);
  }

  /**
   * What a sidecar should say: accepted tags and caption (the user's own first), minus rejected tags; with the
   * lexicon, the WordNet hierarchy of every tag that names a concept ("dog": "animal|vertebrate|mammal|dog").
   */
  private accepted(
    imageId: number,
    lexicon?: ConceptLexicon,
  ): { tags: string[]; caption: string | null; removeTags: string[]; hierarchy: Record<string, string> } {
    const { captions, tags } = this.library.descriptions(imageId);
    const chosen = captions.filter((c) => c.status === 'accepted');
    const caption = chosen.find((c) => c.source === 'user') ?? chosen[0];
    const hierarchy: Record<string, string> = {};
    for (const t of tags) {
      const path = t.status === 'proposed' ? undefined : lexicon?.hierarchy(t.text);
      if (path) hierarchy[t.text] = path;
    }
    return {
      tags: tags.filter((t) => t.status === 'accepted').map((t) => t.text),
      caption: caption?.text ?? null,
      removeTags: tags.filter((t) => t.status === 'rejected').map((t) => t.text),
      hierarchy,
    };
  }

  private reviewedImageIds(): number[] {
    const ids: number[] = [];
    for (const image of this.library.allImages()) {
      const { tags, caption } = this.accepted(image.id);
      if (tags.length || caption) ids.push(image.id);
    }
    return ids;
  }

  private async writeXmp(imageIds: number[]): Promise<Output<'xmp.write'>> {
    const written: string[] = [];
    const failed: Array<{ path: string; reason: string }> = [];
    // One long-running exiftool for the batch; a photo that fails, fails alone.
    const lexicon = await this.conceptLexicon();
    const writer = new XmpWriter({ naming: this.options.xmpNaming ?? 'photo.jpg.xmp' });
    try {
      for (const imageId of imageIds) {
        const image = this.library.image(imageId);
        if (!image) {
          failed.push({ path: `image ${imageId}`, reason: 'is not in the library' });
          continue;
        }
        try {
          written.push(await writer.write(image.path, this.accepted(imageId, lexicon)));
        } catch (error) {
          if (!(error instanceof SagasuError)) throw error;
          failed.push({ path: image.path, reason: error.reason });
        }
      }
    } finally {
      await writer.close();
    }
    return { written, failed };
  }

  private export(format: 'csv' | 'json'): Output<'export'> {
    const rows = [];
    for (const image of this.library.allImages()) {
      const { captions, tags } = this.library.descriptions(image.id);
      rows.push({ path: image.path, captions, tags });
    }
    return { format, text: exportRows(rows, format) };
  }

  /**
   * A photo media may show: one that decoded when it was indexed and is still a photo file inside its library
   * folder. A file that never decoded (a link to a text file named .jpg) is not served.
   */
  private servable(imageId: number): { image: ImageRecord; path: string } {
    const image = this.image(imageId);
    if (image.status === 'failed' || image.width === null)
      throw new SagasuError(
        'not-found',
        image.path,
        `has no photo to show: it could not be read as one when indexed${image.error ? ` (${image.error})` : ''}`,
      );
    const path = resolve(image.path);
    const root = this.library.roots().find((r) => r.id === image.rootId);
    const rel = root ? relative(root.path, path) : '..';
    if (
      rel === '' ||
      rel.startsWith('..') ||
      isAbsolute(rel) ||
      !PHOTO_EXTENSIONS.has(extname(path).toLowerCase())
    )
      throw new SagasuError('forbidden', path, 'is not a photo file inside a library folder');
    return { image, path };
  }

  /**
   * The bytes, if they are still an image: a link swapped in for a photo after indexing is refused by its
   * content, and a FIFO or device by readPhotoFile's non-blocking open, so it never blocks a thread.
   */
  private async photoBytes(path: string): Promise<{ bytes: Buffer; type: string }> {
    const bytes = Buffer.from(await readPhotoFile(path));
    const format = await sharp(bytes)
      .metadata()
      .then((m) => m.format as string)
      .catch(() => '');
    const served = SERVED_FORMATS[format];
    if (!served)
      throw new ImageError(
        'unsupported-format',
        path,
        'is no longer a photo (it changed since it was indexed); index the folder again',
      );
    return { bytes, type: format === 'heif' ? (MIME[extname(path).toLowerCase()] ?? served) : served };
  }

  async media(imageId: number, kind: 'thumb' | 'full', size = 256): Promise<{ bytes: Buffer; type: string }> {
    const { image, path } = this.servable(imageId);
    if (kind === 'full') return this.photoBytes(path);
    const side = THUMB_SIZES.find((s) => s >= size) ?? THUMB_SIZES[THUMB_SIZES.length - 1];
    const { mtimeMs } = await stat(path);
    const dir = join(this.library.dir, 'thumbs');
    const file = join(dir, `${imageId}-${side}-${Math.round(mtimeMs)}.jpg`);
    try {
      return { bytes: await readFile(file), type: 'image/jpeg' };
    } catch {
      // not made yet
    }
    const { bytes: photo } = await this.photoBytes(path);
    let bytes: Buffer;
    try {
      bytes = await sharp(photo, { failOn: 'none' })
        .rotate()
        .resize(side, side, { fit: 'inside', withoutEnlargement: true })
        .jpeg({ quality: 80 })
        .toBuffer();
    } catch (error) {
      throw new SagasuError('corrupt', image.path, 'cannot be decoded for a thumbnail', { cause: error });
    }
    await mkdir(dir, { recursive: true });
    const temp = `${file}.${process.pid}.tmp`;
    await writeFile(temp, bytes);
    await rename(temp, file);
    return { bytes, type: 'image/jpeg' };
  }

  async close(): Promise<void> {
    this.library.cancel();
    await this.job?.catch(() => {});
    await this.library.close();
    await Promise.all([this.model.close(), this.extractor.close()]);
  }
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
}

/**
 * `status` of a library that cannot be written (a read-only disk): read from the catalog without the lock,
 * the CNN or the vector index, changing nothing. The index is idle, since nothing can be indexed there.
 */
export async function readOnlyStatus(options: {
  libraryDir: string;
  modelDir?: string;
}): Promise<Output<'status'>> {
  const modelDir = options.modelDir ?? join(jointModelsDir, 'fne');
  const { roots, counts, failures } = await Library.readOnlyStatus({ dir: options.libraryDir, modelDir });
  const model = await JointModel.open(modelDir);
  try {
    return {
      roots,
      images: counts,
      failures,
      model: { name: model.name, dim: model.dim, languages: model.languages },
      index: idleProgress(),
    };
  } finally {
    await model.close();
  }
}

export function openEngine(options: EngineOptions): Promise<EngineHost> {
  return Engine.open(options);
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
