import type { Hit, ParsedInput, SearchFilters, SearchPage } from '../../contract/index.ts';
import { loadSearchCalibration } from '../calibration/index.ts';
import { ConceptLexicon } from '../concepts/index.ts';
import { isStopWord } from '../describe/index.ts';
import { SagasuError } from '../errors.ts';
import {
  conceptScores,
  conceptWeight,
  conceptZ,
  type FusionWeights,
  fusedScore,
  topRows,
  unknownShare,
  unseenWords,
} from '../fusion/index.ts';
import type { JointModel } from '../joint/index.ts';
import type { Library } from '../library/index.ts';
import { indexedVector, type Photo } from './catalogue.ts';

/** A ranked photo; its path and size are read from the catalog only for the page that shows it. */
type Ranked = Pick<Hit, 'imageId' | 'score' | 'via'>;

/** Ranked hits are kept per query, so paging and scrolling do not search again. */
interface RankedQuery {
  key: string;
  hits: Ranked[];
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
export interface Ranking {
  cutoff: number | null;
  fusion: { weights: FusionWeights; lexicon: ConceptLexicon } | null;
  /** Why concepts are off (said once per query in the page's note), or null. */
  off: string | null;
}

/**
 * The ranking of a model: with models/search.json's fusion weights for it, the fused score and its cutoff;
 * else the cosine and its own cutoff, or none.
 */
export async function loadRanking(model: JointModel, conceptLexicon?: string): Promise<Ranking> {
  // With the model's directory, a retrained model of the same name does not inherit an old cutoff.
  const calibration = await loadSearchCalibration(model.name, { modelDir: model.dir });
  const ranking: Ranking = { cutoff: calibration?.cutoff ?? null, fusion: null, off: null };
  if (!calibration?.fusion) return ranking;
  try {
    const lexicon = await ConceptLexicon.load(conceptLexicon);
    return {
      cutoff: calibration.fusion.cutoff,
      fusion: { weights: calibration.fusion.weights, lexicon },
      off: null,
    };
  } catch (error) {
    // A damaged lexicon costs the concepts, not search: the joint score and its own cutoff still rank.
    if (!(error instanceof SagasuError)) throw error;
    return { ...ranking, off: `Concepts are off: ${error.message}` };
  }
}

/** Photos by sentence and by example; ranked hits are kept per query, so paging does not search again. */
export class Search {
  private ranked: RankedQuery | null = null;
  /**
   * The photos each filter lets through, until the catalog changes: the date filter reads every photo's date
   * (330 ms at 100k photos), and a user types several queries under one filter.
   */
  private allowedBy = new Map<string, Set<number> | null>();

  constructor(
    private readonly library: Library,
    private readonly model: JointModel,
    /** The model set version of `model`: a search that outlives a swap of sets is refused, never mixed. */
    private readonly modelVersion: string,
    private readonly ranking: Ranking,
    private readonly embedFile: (path: string) => Promise<Float32Array>,
  ) {}

  /** The catalog changed (new vectors, photos gone): a repeated query ranks again. */
  forget(): void {
    this.ranked = null;
    this.allowedBy.clear();
  }

  async search(args: ParsedInput<'search'>): Promise<SearchPage> {
    const cutoff = args.cutoff === undefined ? this.ranking.cutoff : args.cutoff;
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
      hits: this.page(ranked.hits.slice(args.offset, args.offset + args.k)),
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
    const vector = await this.model.encodeAnalysis(analysis);
    this.sameModelSet();
    const allowed = this.allowed(filters);
    const allow = allowed ? (id: number) => allowed.has(id) : undefined;
    // The index's own size, not the catalog's count: that is a scan of every photo (37 ms a query at 100k).
    const n = Math.min(fetch, this.library.search.size);
    const nearest = this.library.search.nearest(vector, n, allow);
    const cosines = new Map(nearest.map((h) => [h.imageId, h.score]));
    // File, folder and tag names are matched on the sentence's content words only: "on the" names nothing.
    const content = query
      .split(/\s+/)
      .filter((w) => !/^[\p{Script=Latin}'’-]+$/u.test(w) || !isStopWord(w.toLocaleLowerCase('en')))
      .join(' ');
    const keyword = this.library.catalog
      .keyword(content, KEYWORD_LIMIT)
      .filter((k) => !allow || allow(k.imageId));
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
    // Beyond the fetched nearest a cosine is at most the last one's: what cannot reach the cutoff is skipped
    // before anything is read from the catalog; the rest, found by name or concept, is read in one query.
    const reaches = (id: number) => cutoff === null || lastScore + lambda * (concept?.z(id) ?? 0) >= cutoff;
    const outside = [...candidates].filter((id) => !cosines.has(id));
    const beyond = this.library.catalog.images(
      outside.filter((id) => literal.has(id) || nearest.length < n || reaches(id)),
    );
    const hits: Ranked[] = [];
    for (const imageId of candidates) {
      let cosine = cosines.get(imageId);
      if (cosine === undefined) {
        // Its stored vector still gives the joint score.
        const image = beyond.get(imageId);
        if (!image || !this.library.roots.online(image.rootId)) continue;
        const stored = this.library.search.get(imageId);
        if (!stored) continue;
        cosine = dot(stored, vector);
      }
      const score = fused(imageId, cosine);
      const matched = literal.has(imageId);
      if (!matched && cutoff !== null && score < cutoff) continue;
      hits.push({ imageId, score, via: matched ? (cosines.has(imageId) ? 'both' : 'keyword') : 'vector' });
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
    const table = this.library.search.classes;
    const rows = table.view();
    const terms = await fusion.lexicon.query(query, lang);
    const scores = conceptScores(terms, rows, fusion.weights.floor);
    if (!scores) return null;
    const zs = conceptZ(scores, fusion.weights);
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

  private allowed(filters: SearchFilters): Set<number> | null {
    const key = JSON.stringify(filters);
    let ids = this.allowedBy.get(key);
    if (ids === undefined) {
      if (this.allowedBy.size >= 16) this.allowedBy.clear();
      ids = this.library.catalog.filterIds(filters);
      this.allowedBy.set(key, ids);
    }
    return ids;
  }

  private sameModelSet(): void {
    if (this.library.modelVersion !== this.modelVersion)
      throw new SagasuError(
        'model-switched',
        'search',
        'the library switched to another model set while this search ran; search again',
      );
  }

  /** The page's photos with their paths and sizes, read from the catalog in one query. */
  private page(ranked: readonly Ranked[]): Hit[] {
    const images = this.library.catalog.images(ranked.map((r) => r.imageId));
    return ranked.map(({ imageId, score, via }) => {
      const image = images.get(imageId);
      if (!image) throw new SagasuError('not-found', `image ${imageId}`, 'is not in the library');
      const { path, width, height, takenAt } = image;
      return { imageId, path, score, width, height, takenAt, via };
    });
  }

  async similar(photo: Photo, args: ParsedInput<'similar'>): Promise<SearchPage> {
    const self = 'path' in photo ? undefined : photo.imageId;
    const vector =
      'path' in photo ? await this.embedFile(photo.path) : indexedVector(this.library, photo.imageId);
    this.sameModelSet();
    const allowed = this.allowed(args.filters);
    const allow = (id: number) => id !== self && (!allowed || allowed.has(id));
    // Every photo is similar to some degree: the whole (filtered) library, nearest first, page by page.
    const candidates = (allowed ? allowed.size : this.library.search.size) - (self === undefined ? 0 : 1);
    const n = Math.min(args.offset + args.k, Math.max(candidates, 0));
    const hits = this.library.search.nearest(vector, n, allow);
    return {
      hits: this.page(
        hits.slice(args.offset).map((h) => ({ imageId: h.imageId, score: h.score, via: 'vector' })),
      ),
      total: Math.max(candidates, hits.length),
      cutoff: null,
      lang: null,
      unknownWords: [],
      note: null,
    };
  }
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
}
