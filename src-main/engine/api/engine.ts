import { EventEmitter } from 'node:events';
import { join } from 'node:path';
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
import { FneExtractor } from '../fne/index.ts';
import { JointModel, jointModelsDir } from '../joint/index.ts';
import { idleProgress, Library } from '../library/index.ts';
import { Catalogue, onePhoto } from './catalogue.ts';
import { Descriptions } from './descriptions.ts';
import { media } from './media.ts';
import { loadRanking, type Ranking, Search } from './search.ts';

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

/** One handler per method of the contract, given its input as the contract's schema parsed it. */
type Handlers = { [M in Method]: (input: ParsedInput<M>) => Output<M> | Promise<Output<M>> };

/** The in-process engine: the library, the models and the describe room behind the one contract. */
export class Engine implements EngineHost {
  private readonly events = new EventEmitter();
  private readonly search: Search;
  private readonly catalogue: Catalogue;
  private readonly handlers: Handlers;

  private constructor(
    options: EngineOptions,
    private readonly library: Library,
    private readonly model: JointModel,
    private readonly extractor: FneExtractor,
    ranking: Ranking,
  ) {
    const descriptions = new Descriptions(library, model, extractor, options.captionBank, (imageId) =>
      this.emit('library.changed', { imageIds: [imageId] }),
    );
    this.search = new Search(library, model, ranking, (path) => descriptions.embedFile(path));
    const catalogue = new Catalogue(library, model, {
      xmpNaming: options.xmpNaming ?? 'photo.jpg.xmp',
      conceptLexicon: () => descriptions.conceptLexicon(),
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
        library.pause();
        return library.progress();
      },
      'index.resume': () => {
        library.resume();
        return library.progress();
      },
      'index.cancel': () => {
        library.cancel();
        return library.progress();
      },
      search: (input) => this.search.search(input),
      similar: (input) => this.search.similar(onePhoto(input), input),
      'image.get': ({ imageId }) => catalogue.imageDetails(imageId),
      'image.describe': (input) => {
        const photo = onePhoto(input);
        return 'path' in photo
          ? descriptions.describeFile(photo.path)
          : descriptions.describe(photo.imageId, input.refresh);
      },
      'image.explain': (input) => descriptions.explain(input),
      'caption.review': ({ imageId, captionId, status }) => library.reviewCaption(imageId, captionId, status),
      'caption.add': ({ imageId, text }) => library.addCaption(imageId, text),
      'tag.review': ({ imageId, tagId, status }) => library.reviewTag(imageId, tagId, status),
      'tag.add': ({ imageId, text }) => library.addTag(imageId, text),
      'xmp.write': ({ imageIds }) => catalogue.writeXmp(imageIds),
      export: ({ format }) => catalogue.export(format),
    };
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
    const ranking = await loadRanking(model, options.conceptLexicon);
    const engine = new Engine(options, library, model, extractor, ranking);
    if (options.watch) await library.watch((imageIds) => engine.changed(imageIds));
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
    this.library.cancel();
    await this.catalogue.whenIdle().catch(() => {});
    await this.library.close();
    await Promise.all([this.model.close(), this.extractor.close()]);
  }
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
