import type { Events, IndexProgress, Output } from '../../contract/index.ts';
import type { ConceptLexicon } from '../concepts/index.ts';
import { ArgumentError, SagasuError } from '../errors.ts';
import { exportRows, XmpWriter } from '../export/index.ts';
import type { JointModel } from '../joint/index.ts';
import type { ImageRecord, Library } from '../library/index.ts';

/** An indexed photo, or a not-found error naming it. */
export function indexedImage(library: Library, imageId: number): ImageRecord {
  const image = library.catalog.image(imageId);
  if (!image) throw new SagasuError('not-found', `image ${imageId}`, 'is not in the library');
  return image;
}

/** The joint vector of an indexed photo, or why there is none yet. */
export function indexedVector(library: Library, imageId: number): Float32Array {
  indexedImage(library, imageId);
  const vector = library.search.get(imageId);
  if (!vector)
    throw new SagasuError(
      'not-indexed',
      `image ${imageId}`,
      'has no embedding yet (still indexing, or it failed)',
    );
  return vector;
}

/** The photo a call names: an indexed one, or any image file on disk. */
export type Photo = { imageId: number } | { path: string };

/** The one of imageId and path that a call gives (the contract lets exactly one through). */
export function onePhoto(input: { imageId?: number | undefined; path?: string | undefined }): Photo {
  if (input.imageId !== undefined) return { imageId: input.imageId };
  if (input.path !== undefined) return { path: input.path };
  throw new ArgumentError('imageId', 'give exactly one of imageId or path');
}

/** The catalogue: its folders, the indexing job over them, each photo's details, and what leaves it (XMP, exports). */
export class Catalogue {
  private job: Promise<IndexProgress> | null = null;

  constructor(
    private readonly library: Library,
    /** The joint model of the set serving search (another one after a switch of model sets). */
    private readonly model: () => JointModel,
    private readonly options: {
      xmpNaming: 'photo.jpg.xmp' | 'photo.xmp';
      conceptLexicon: () => Promise<ConceptLexicon>;
      /** Photos were added or removed: rankings of earlier queries are stale. */
      stale: () => void;
      emit: <E extends keyof Events>(event: E, payload: Events[E]) => void;
    },
  ) {}

  private progress(): IndexProgress {
    return this.library.indexer.progress();
  }

  status(): Output<'status'> {
    return {
      roots: this.library.roots.list(),
      images: this.library.counts(),
      failures: this.library.catalog.failures(),
      model: { name: this.model().name, dim: this.model().dim, languages: this.model().languages },
      modelSets: this.library.modelSets(),
      index: this.progress(),
    };
  }

  addRoot(path: string): Output<'roots.add'> {
    const root = this.library.roots.add(path);
    this.options.emit('library.changed', { imageIds: null });
    return root;
  }

  removeRoot(rootId: number): Output<'roots.remove'> {
    const removed = this.library.roots.remove(rootId);
    this.options.stale();
    this.options.emit('library.changed', { imageIds: null });
    return removed;
  }

  startIndexing(rootId: number | undefined, removeMissing: boolean): IndexProgress {
    if (!this.job) {
      let done = 0;
      let announced = 0;
      this.job = this.library.indexer
        .run({
          ...(rootId === undefined ? {} : { rootId }),
          removeMissing,
          onProgress: (p) => {
            this.options.emit('index.progress', p);
            if (p.done === done) return;
            // New photos are searchable as soon as their batch is stored: a repeated query must see them, and
            // open views may refresh (at most once a second, not once a batch).
            done = p.done;
            this.options.stale();
            if (Date.now() - announced >= 1000) {
              announced = Date.now();
              this.options.emit('library.changed', { imageIds: null });
            }
          },
        })
        .then((p) => {
          this.options.stale();
          this.options.emit('library.changed', { imageIds: null });
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

  imageDetails(imageId: number): Output<'image.get'> {
    const image = indexedImage(this.library, imageId);
    return { ...image, ...this.library.catalog.descriptions(imageId) };
  }

  /**
   * What a sidecar should say: accepted tags and caption (the user's own first), minus rejected tags; with the
   * lexicon, the WordNet hierarchy of every tag that names a concept ("dog": "animal|vertebrate|mammal|dog").
   */
  private accepted(
    imageId: number,
    lexicon?: ConceptLexicon,
  ): { tags: string[]; caption: string | null; removeTags: string[]; hierarchy: Record<string, string> } {
    const { captions, tags } = this.library.catalog.descriptions(imageId);
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
    for (const image of this.library.catalog.allImages()) {
      const { tags, caption } = this.accepted(image.id);
      if (tags.length || caption) ids.push(image.id);
    }
    return ids;
  }

  /** Without imageIds: every photo that has an accepted tag or caption. */
  async writeXmp(imageIds = this.reviewedImageIds()): Promise<Output<'xmp.write'>> {
    const written: string[] = [];
    const failed: Array<{ path: string; reason: string }> = [];
    // One long-running exiftool for the batch; a photo that fails, fails alone.
    const lexicon = await this.options.conceptLexicon();
    const writer = new XmpWriter({ naming: this.options.xmpNaming });
    try {
      for (const imageId of imageIds) {
        const image = this.library.catalog.image(imageId);
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

  export(format: 'csv' | 'json'): Output<'export'> {
    const rows = [];
    for (const image of this.library.catalog.allImages()) {
      const { captions, tags } = this.library.catalog.descriptions(image.id);
      rows.push({ path: image.path, captions, tags });
    }
    return { format, text: exportRows(rows, format) };
  }
}
