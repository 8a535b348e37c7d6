import { z } from 'zod';
import { ArgumentError, type ErrorCode, SagasuError } from '../engine/errors.ts';
import { FILE_TYPES, type FileType } from './photo-files.ts';

export { ERROR_CODES, type ErrorCode } from '../engine/errors.ts';

/**
 * The one contract every door calls (CLI, HTTP server, Electron IPC). Inputs are validated HERE, once, with
 * these schemas; the doors only move JSON. Outputs are plain JSON-able types.
 */

const id = z.number().int().positive();
const day = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'expected a date as YYYY-MM-DD')
  .refine(isCalendarDay, { error: (issue) => `${String(issue.input)} is not a day of the calendar` });

/** 2024-02-29 is; 2024-02-31 and 2023-02-29 are not (a Date would roll them over into March). */
function isCalendarDay(text: string): boolean {
  const [y, m, d] = text.split('-').map(Number) as [number, number, number];
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not read years 0-99 as 1900-1999.
  date.setUTCFullYear(y, m - 1, d);
  return date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d;
}

export const LANGS = ['auto', 'en', 'ja'] as const;

export const SearchFilters = z
  .object({
    rootId: id.optional(),
    /** An absolute folder inside a root: only photos under it. */
    folder: z.string().min(1).max(4096).optional(),
    /** Taken on or after / on or before (EXIF date, else the file's mtime). */
    from: day.optional(),
    to: day.optional(),
    types: z.array(z.enum(FILE_TYPES)).min(1).optional(),
  })
  .strict();
export type SearchFilters = z.infer<typeof SearchFilters>;

const page = {
  /** Results per page. */
  k: z.number().int().min(1).max(1000).default(50),
  offset: z.number().int().min(0).max(1_000_000).default(0),
  filters: SearchFilters.default({}),
};

export const methods = {
  status: z.object({}).strict(),
  'roots.add': z.object({ path: z.string().min(1).max(4096) }).strict(),
  'roots.remove': z.object({ rootId: id }).strict(),
  /** Walks the roots (all, or one) and indexes what changed; progress arrives as 'index.progress' events. */
  'index.start': z
    .object({
      rootId: id.optional(),
      /**
       * The person confirms that photos gone from the folders are really gone: a folder that looks unmounted
       * (no photos left, another disk, most photos gone at once) is taken as it is instead of held offline.
       */
      removeMissing: z.boolean().default(false),
    })
    .strict(),
  'index.pause': z.object({}).strict(),
  'index.resume': z.object({}).strict(),
  'index.cancel': z.object({}).strict(),
  search: z
    .object({
      query: z.string().max(10_000),
      lang: z.enum(LANGS).default('auto'),
      /** Minimum score; null turns the calibrated relevance cutoff off; absent uses the calibrated one. */
      cutoff: z.number().min(-1).max(1).nullable().optional(),
      ...page,
    })
    .strict(),
  similar: z
    .object({
      /** An indexed photo, or any image file on disk (not stored). */
      imageId: id.optional(),
      path: z.string().min(1).max(4096).optional(),
      ...page,
    })
    .strict()
    .refine((v) => (v.imageId === undefined) !== (v.path === undefined), {
      message: 'give exactly one of imageId or path',
    }),
  'image.get': z.object({ imageId: id }).strict(),
  /**
   * Auto-captions and tags of an indexed photo, computed (and stored) when it has none yet or on refresh; or of
   * any image file by path (computed, not stored).
   */
  'image.describe': z
    .object({
      imageId: id.optional(),
      path: z.string().min(1).max(4096).optional(),
      refresh: z.boolean().default(false),
    })
    .strict()
    .refine((v) => (v.imageId === undefined) !== (v.path === undefined), {
      message: 'give exactly one of imageId or path',
    }),
  /** Why this photo matches this sentence: the score split by CNN layer and block. */
  'image.explain': z
    .object({ imageId: id, query: z.string().min(1).max(10_000), lang: z.enum(LANGS).default('auto') })
    .strict(),
  'caption.review': z
    .object({ imageId: id, captionId: id, status: z.enum(['accepted', 'rejected', 'proposed']) })
    .strict(),
  /** A caption the user wrote; it is stored as accepted, and replaces an accepted auto-caption. */
  'caption.add': z.object({ imageId: id, text: z.string().trim().min(1).max(2000) }).strict(),
  'tag.review': z
    .object({ imageId: id, tagId: id, status: z.enum(['accepted', 'rejected', 'proposed']) })
    .strict(),
  'tag.add': z.object({ imageId: id, text: z.string().trim().min(1).max(200) }).strict(),
  /**
   * Writes accepted tags and caption into each photo's XMP sidecar (merged; the photo is never touched). Without
   * imageIds: every photo that has an accepted tag or caption.
   */
  'xmp.write': z.object({ imageIds: z.array(id).min(1).max(100_000).optional() }).strict(),
  export: z.object({ format: z.enum(['csv', 'json']) }).strict(),
  /**
   * Moves the library to another model set (kept as its choice): its vectors are made in the background while
   * the current set's answer search, then swapped in; progress shows in status.modelSets and 'index.progress'.
   */
  'modelSet.choose': z.object({ name: z.string().min(1).max(200) }).strict(),
} as const;

export type Method = keyof typeof methods;
export type Input<M extends Method> = z.input<(typeof methods)[M]>;
export type ParsedInput<M extends Method> = z.output<(typeof methods)[M]>;

export interface RootInfo {
  id: number;
  path: string;
  /** false while the folder is missing (an unplugged disk): its photos stay in the catalog, unsearchable. */
  online: boolean;
  /**
   * Why it is offline (null while online): the folder is missing, or the last index held it back because it
   * looked unmounted (no photos left, another disk, most photos gone at once) and removed nothing.
   */
  offlineReason: string | null;
  images: number;
  failed: number;
}

export type IndexState = 'idle' | 'walking' | 'running' | 'paused' | 'cancelled' | 'done';

export interface IndexProgress {
  state: IndexState;
  done: number;
  total: number;
  failed: number;
  imagesPerSecond: number;
  /** Seconds left at the current rate; null while unknown. */
  etaSeconds: number | null;
  currentFile: string | null;
}

export interface Status {
  roots: RootInfo[];
  images: { total: number; indexed: number; failed: number; pending: number };
  /** Everything that could not be read, by path: photos, folders that cannot be listed, names not in UTF-8. */
  failures: Array<{ path: string; reason: string }>;
  model: { name: string; dim: number; languages: Array<'en' | 'ja'> };
  /** What the vectors come from (engine/joint/model-set.ts): never two sets' vectors in one ranking. */
  modelSets: {
    /** The set whose vectors answer search. */
    active: string;
    /** The set the person chose; while it differs from active, its vectors are being made. */
    chosen: string;
    /** Indexed photos still without a vector of the chosen set (0 once it is the active one). */
    pending: number;
    available: Array<{ name: string; backbone: 'mobilenet_v2' | 'resnet50'; languages: Array<'en' | 'ja'> }>;
  };
  index: IndexProgress;
}

export interface Hit {
  imageId: number;
  path: string;
  score: number;
  width: number | null;
  height: number | null;
  takenAt: string | null;
  /** How the photo matched: the sentence's vector, its file name / tags (FTS), or both. */
  via: 'vector' | 'keyword' | 'both';
}

export interface SearchPage {
  hits: Hit[];
  /** Results above the cutoff in all (for pagination); capped at the engine's candidate limit. */
  total: number;
  /** The cutoff used (null: none). */
  cutoff: number | null;
  lang: 'en' | 'ja' | null;
  /** Words of the query the model does not know (they carry no meaning for it). */
  unknownWords: string[];
  /** One line for the person when the result needs explaining (e.g. every word unknown). */
  note: string | null;
}

export type ReviewStatus = 'proposed' | 'accepted' | 'rejected';

export interface Caption {
  id: number;
  text: string;
  /** Similarity score for auto-captions; null for the user's own. */
  score: number | null;
  source: 'auto' | 'user';
  status: ReviewStatus;
}

export interface Tag {
  id: number;
  text: string;
  /** Confidence in [0, 1] for auto-tags; null for the user's own. */
  confidence: number | null;
  source: 'auto' | 'user';
  status: ReviewStatus;
}

export interface ImageDetails {
  id: number;
  rootId: number;
  path: string;
  bytes: number;
  width: number | null;
  height: number | null;
  takenAt: string | null;
  camera: string | null;
  type: FileType | null;
  status: 'pending' | 'indexed' | 'failed';
  error: string | null;
  captions: Caption[];
  tags: Tag[];
}

export interface LayerContribution {
  name: string;
  /** The network block the layer belongs to (stem, block_1 … block_16, head): early = colour and texture. */
  block: string;
  contribution: number;
}

export interface Explanation {
  score: number;
  layers: LayerContribution[];
  blocks: Array<{ block: string; contribution: number }>;
}

interface Outputs {
  status: Status;
  'roots.add': RootInfo;
  'roots.remove': { removedImages: number };
  'index.start': IndexProgress;
  'index.pause': IndexProgress;
  'index.resume': IndexProgress;
  'index.cancel': IndexProgress;
  search: SearchPage;
  similar: SearchPage;
  'image.get': ImageDetails;
  'image.describe': { captions: Caption[]; tags: Tag[] };
  'image.explain': Explanation;
  'caption.review': Caption;
  'caption.add': Caption;
  'tag.review': Tag;
  'tag.add': Tag;
  'xmp.write': { written: string[]; failed: Array<{ path: string; reason: string }> };
  export: { format: 'csv' | 'json'; text: string };
  'modelSet.choose': Status['modelSets'];
}

export type Output<M extends Method> = Outputs[M];

export interface Events {
  'index.progress': IndexProgress;
  /** The catalog changed (indexing, the watcher, a review): views showing it may refresh. */
  'library.changed': { imageIds: number[] | null };
}

/** Every event's name, for whatever forwards them all (a door, the engine worker); one left out does not compile. */
export const EVENT_NAMES = Object.keys({
  'index.progress': true,
  'library.changed': true,
} satisfies Record<keyof Events, true>) as Array<keyof Events>;

/**
 * The contract as an interface: the engine a door holds (EngineHost), the desktop window's bridge (SagasuBridge)
 * and the renderer's Client each extend it with what only they have.
 */
export interface SagasuApi {
  invoke<M extends Method>(method: M, input: Input<M>): Promise<Output<M>>;
  on<E extends keyof Events>(event: E, listener: (payload: Events[E]) => void): () => void;
}

/** The error every door returns for a refused or failed call: stable code, the argument or file, a reason. */
export interface ApiError {
  code: ErrorCode;
  subject: string;
  message: string;
}

/** What a door answers to one call: errors travel as data, since neither IPC nor HTTP carries a thrown one. */
export type Answer = { ok: true; result: unknown } | { ok: false; error: ApiError };

/** Validates a call's input against its schema; a refusal is an ArgumentError naming the field and why. */
export function parseInput<M extends Method>(method: M, input: unknown): ParsedInput<M> {
  const schema = (methods as Record<string, z.ZodType | undefined>)[method];
  if (!schema) throw new ArgumentError('method', `unknown method ${JSON.stringify(method)}`);
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data as ParsedInput<M>;
  const issue = result.error.issues[0];
  const where = issue?.path.length ? `${method}.${issue.path.join('.')}` : method;
  throw new ArgumentError(where, issue?.message ?? 'invalid input');
}

/** A SagasuError (or anything thrown) as the JSON a door sends back. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof SagasuError)
    return { code: error.code, subject: error.subject, message: error.message };
  const message = error instanceof Error ? error.message : String(error);
  return { code: 'internal', subject: 'sagasu', message };
}

/** The SagasuError an ApiError came from, for proxies that carry errors across a thread or the network. */
export function fromApiError(error: ApiError): SagasuError {
  const prefix = `${error.subject}: `;
  const reason = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
  return new SagasuError(error.code, error.subject, reason);
}
