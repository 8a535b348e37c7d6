import { EventEmitter } from 'node:events';
import type {
  Events,
  IndexProgress,
  Input,
  Method,
  Output,
  ParsedInput,
  SagasuApi,
} from '../../contract/index.ts';
import { parseInput } from '../../contract/index.ts';
import type { FneExtractor } from '../fne/index.ts';
import { JointModel } from '../joint/index.ts';
import { idleProgress, Library } from '../library/index.ts';
import { Catalogue, onePhoto } from './catalogue.ts';
import { Descriptions } from './descriptions.ts';
import { media } from './media.ts';
import { loadRanking, type Ranking, Search } from './search.ts';

export interface EngineOptions {
  /** Where the catalog, the vector index and the thumbnails live. */
  libraryDir: string;
  /**
   * The model set to move the library to (kept as its choice; engine/joint/model-set.ts); default: the one chosen
   * before. With `watch`, its vectors are made at once in the background.
   */
  modelSet?: string;
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

/** One handler per method of the contract, given its input as the contract's schema parsed it. */
type Handlers = { [M in Method]: (input: ParsedInput<M>) => Output<M> | Promise<Output<M>> };

/** The in-process engine: the library, the models and the describe room behind the one contract. */
export class Engine implements EngineHost {
  private readonly events = new EventEmitter();
  private model!: JointModel;
  private search!: Search;
  private descriptions!: Descriptions;
  private readonly catalogue: Catalogue;
  private readonly handlers: Handlers;

  private constructor(
    private readonly options: EngineOptions,
    private readonly library: Library,
    model: JointModel,
    extractor: FneExtractor,
    ranking: Ranking,
  ) {
    this.serve(model, extractor, ranking);
    library.onSwitch(async (next, nextExtractor) => {
      const nextRanking = await loadRanking(next, options.conceptLexicon);
      return () => this.serve(next, nextExtractor, nextRanking);
    });
    const catalogue = new Catalogue(library, () => this.model, {
      xmpNaming: options.xmpNaming ?? 'photo.jpg.xmp',
      conceptLexicon: () => this.descriptions.conceptLexicon(),
      stale: () => this.search.forget(),
      emit: (event, payload) => this.emit(event, payload),
    });
    this.catalogue = catalogue;
    this.handlers = {
      status: () => catalogue.status(),
      'roots.add': ({ path }) => catalogue.addRoot(path),
      'roots.remove': ({ rootId }) => catalogue.removeRoot(rootId),
      'index.start': ({ rootId, removeMissing }) => catalogue.startIndexing(rootId, removeMissing),
      'index.pause': () => {
        library.indexer.pause();
        return library.indexer.progress();
      },
      'index.resume': () => {
        library.indexer.resume();
        return library.indexer.progress();
      },
      'index.cancel': () => {
        library.indexer.cancel();
        return library.indexer.progress();
      },
      search: (input) => this.search.search(input),
      similar: (input) => this.search.similar(onePhoto(input), input),
      'image.get': ({ imageId }) => catalogue.imageDetails(imageId),
      'image.describe': (input) => {
        const photo = onePhoto(input);
        return 'path' in photo
          ? this.descriptions.describeFile(photo.path)
          : this.descriptions.describe(photo.imageId, input.refresh);
      },
      'image.explain': (input) => this.descriptions.explain(input),
      'caption.review': ({ imageId, captionId, status }) =>
        library.catalog.reviewCaption(imageId, captionId, status),
      'caption.add': ({ imageId, text }) => library.catalog.addCaption(imageId, text),
      'tag.review': ({ imageId, tagId, status }) => library.catalog.reviewTag(imageId, tagId, status),
      'tag.add': ({ imageId, text }) => library.catalog.addTag(imageId, text),
      'xmp.write': ({ imageIds }) => catalogue.writeXmp(imageIds),
      export: ({ format }) => catalogue.export(format),
      'modelSet.choose': ({ name }) => {
        library.chooseModelSet(name);
        if (this.switching()) catalogue.startIndexing(undefined, false);
        return library.modelSets();
      },
    };
  }

  /** Search and descriptions answer with this set's models from now on (at open, and at a swap of sets). */
  private serve(model: JointModel, extractor: FneExtractor, ranking: Ranking): void {
    this.model = model;
    this.descriptions = new Descriptions(
      this.library,
      model,
      extractor,
      this.options.captionBank,
      (imageId) => this.emit('library.changed', { imageIds: [imageId] }),
    );
    const descriptions = this.descriptions;
    this.search = new Search(this.library, model, this.library.modelVersion, ranking, (path) =>
      descriptions.embedFile(path),
    );
  }

  private switching(): boolean {
    const { active, chosen } = this.library.modelSets();
    return active !== chosen;
  }

  static async open(options: EngineOptions): Promise<Engine> {
    const library = await Library.open({
      dir: options.libraryDir,
      ...(options.modelSet === undefined ? {} : { modelSet: options.modelSet }),
    });
    let engine: Engine;
    try {
      const { model, extractor } = await library.activeModels();
      const ranking = await loadRanking(model, options.conceptLexicon);
      engine = new Engine(options, library, model, extractor, ranking);
    } catch (error) {
      await library.close();
      throw error;
    }
    if (options.watch) {
      await library.watcher.start((imageIds) => engine.changed(imageIds));
      // The app's doors make the chosen set's vectors at once; the old set's answer until they are ready.
      if (engine.switching()) engine.catalogue.startIndexing(undefined, false);
    }
    return engine;
  }

  /** Files changed on disk were indexed by the watcher: rankings are stale, open views may refresh. */
  private changed(imageIds: number[]): void {
    this.search.forget();
    this.emit('library.changed', { imageIds });
  }

  on<E extends keyof Events>(event: E, listener: (payload: Events[E]) => void): () => void {
    this.events.on(event, listener);
    return () => this.events.off(event, listener);
  }

  private emit<E extends keyof Events>(event: E, payload: Events[E]): void {
    this.events.emit(event, payload);
  }

  /** The one place a call's input is validated: every door passes it through unparsed. */
  async invoke<M extends Method>(method: M, input: Input<M>): Promise<Output<M>> {
    const handle: Handlers[M] = this.handlers[method];
    return handle(parseInput(method, input));
  }

  whenIdle(): Promise<IndexProgress> {
    return this.catalogue.whenIdle();
  }

  media(imageId: number, kind: 'thumb' | 'full', size?: number): Promise<{ bytes: Buffer; type: string }> {
    return media(this.library, imageId, kind, size);
  }

  async close(): Promise<void> {
    this.library.indexer.cancel();
    await this.catalogue.whenIdle().catch(() => {});
    await this.library.close();
  }
}

/**
 * `status` of a library that cannot be written (a read-only disk): read from the catalog without the lock,
 * the CNN or the vector index, changing nothing. The index is idle, since nothing can be indexed there.
 */
export async function readOnlyStatus(options: { libraryDir: string }): Promise<Output<'status'>> {
  const { roots, counts, failures, active, modelSets } = await Library.readOnlyStatus({
    dir: options.libraryDir,
  });
  const model = await JointModel.open(active.jointDir);
  try {
    return {
      roots,
      images: counts,
      failures,
      model: { name: model.name, dim: model.dim, languages: model.languages },
      modelSets,
      index: idleProgress(),
    };
  } finally {
    await model.close();
  }
}

export function openEngine(options: EngineOptions): Promise<EngineHost> {
  return Engine.open(options);
}
