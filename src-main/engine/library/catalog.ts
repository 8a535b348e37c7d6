import { basename, dirname, extname, relative, sep } from 'node:path';
import type Database from 'better-sqlite3';
import type {
  Caption,
  FileType,
  ImageDetails,
  ReviewStatus,
  RootInfo,
  SearchFilters,
  Tag,
} from '../../contract/index.ts';
import { photoType } from '../../contract/index.ts';
import { ArgumentError, fileErrorClass, SagasuError } from '../errors.ts';
import { MIGRATIONS } from './schema.ts';
import { openDatabase } from './sqlite.ts';

export type ImageStatus = ImageDetails['status'];

/** One photo as the catalog holds it: the contract's ImageDetails without its captions and tags. */
export type ImageRecord = Omit<ImageDetails, 'captions' | 'tags'>;

/** What the walker compares against the disk. */
export interface KnownFile {
  id: number;
  path: string;
  bytes: number;
  mtimeMs: number;
  hash: string | null;
  status: ImageStatus;
}

/** What indexing learned about one photo. */
interface IndexedImage {
  bytes: number;
  mtimeMs: number;
  hash: string;
  width: number;
  height: number;
  takenAt: string | null;
  camera: string | null;
  type: FileType | null;
}

interface ImageRow {
  id: number;
  root_id: number;
  path: string;
  bytes: number;
  width: number | null;
  height: number | null;
  taken_at: string | null;
  camera: string | null;
  type: string | null;
  status: ImageStatus;
  error: string | null;
}

/** The catalog is from a newer Sagasu, or is not a Sagasu catalog at all. */
export class CatalogError extends fileErrorClass('catalog-invalid') {}

/**
 * All of the library's SQL. The catalog is the source of truth (vectors included); the HNSW file is a
 * cache of it. One connection, WAL, foreign keys on; every multi-row change is one transaction, so a kill at
 * any moment leaves either the old or the new state.
 */
export class Catalog {
  readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(readonly file: string) {
    try {
      this.db = openDatabase(file);
      this.db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode loses nothing when the process dies, only (at worst) the last commits on power loss.
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('foreign_keys = ON');
      this.db.pragma('busy_timeout = 5000');
      this.migrate();
    } catch (error) {
      if (error instanceof SagasuError) throw error;
      throw new CatalogError(
        file,
        `cannot open the catalog: ${error instanceof Error ? error.message : String(error)}`,
        {
          cause: error,
        },
      );
    }
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new CatalogError(
        this.file,
        `the catalog has schema version ${version}, newer than this Sagasu (${MIGRATIONS.length}); update Sagasu`,
      );
    }
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v] as string);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  close(): void {
    this.statements.clear();
    if (this.db.open) this.db.close();
  }

  // ---- meta

  meta(key: string): string | null {
    const row = this.stmt('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value ?? null;
  }

  setMeta(key: string, value: string): void {
    this.stmt(
      'INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
    ).run(key, value);
  }

  // ---- roots

  rootRows(): Array<{ id: number; path: string }> {
    return this.stmt('SELECT id, path FROM roots ORDER BY id').all() as Array<{ id: number; path: string }>;
  }

  root(id: number): { id: number; path: string } | null {
    return (
      (this.stmt('SELECT id, path FROM roots WHERE id = ?').get(id) as { id: number; path: string }) ?? null
    );
  }

  insertRoot(path: string): number {
    return Number(
      this.stmt('INSERT INTO roots(path, added_at) VALUES (?, ?)').run(path, Date.now()).lastInsertRowid,
    );
  }

  /** Deletes the root and (by cascade) its images, vectors and descriptions; returns how many images went. */
  deleteRoot(id: number): number {
    return this.transaction(() => {
      const images = this.stmt('SELECT count(*) AS n FROM images WHERE root_id = ?').get(id) as { n: number };
      this.stmt('DELETE FROM keywords WHERE rowid IN (SELECT id FROM images WHERE root_id = ?)').run(id);
      this.stmt('DELETE FROM roots WHERE id = ?').run(id);
      return images.n;
    });
  }

  /** Each root with its counts; `offline` says why it is offline (null: online), given its path and held reason. */
  rootInfos(offline: (path: string, held: string | null) => string | null): RootInfo[] {
    const rows = this.stmt(
      `SELECT r.id, r.path, r.held, count(i.id) AS images,
              coalesce(sum(i.status = 'failed'), 0)
                + (SELECT count(*) FROM walk_failures w WHERE w.root_id = r.id) AS failed
       FROM roots r LEFT JOIN images i ON i.root_id = r.id GROUP BY r.id ORDER BY r.id`,
    ).all() as Array<{ id: number; path: string; held: string | null; images: number; failed: number }>;
    return rows.map(({ held, ...r }) => {
      const offlineReason = offline(r.path, held);
      return { ...r, online: offlineReason === null, offlineReason };
    });
  }

  /** The root's device at its last accepted walk, and why the last walk held it back (null: it did not). */
  rootWalk(id: number): { device: string | null; held: string | null } {
    return (
      (this.stmt('SELECT device, held FROM roots WHERE id = ?').get(id) as
        | { device: string | null; held: string | null }
        | undefined) ?? { device: null, held: null }
    );
  }

  /** A walk taken as it is: its device is the root's from now on. */
  acceptWalk(id: number, device: string): void {
    this.stmt('UPDATE roots SET device = ?, held = NULL WHERE id = ?').run(device, id);
  }

  holdRoot(id: number, reason: string): void {
    this.stmt('UPDATE roots SET held = ? WHERE id = ?').run(reason, id);
  }

  /** What the root's latest walk could not take replaces what the one before could not. */
  setWalkFailures(rootId: number, failures: ReadonlyArray<{ path: string; reason: string }>): void {
    this.stmt('DELETE FROM walk_failures WHERE root_id = ?').run(rootId);
    for (const f of failures)
      this.stmt('INSERT OR REPLACE INTO walk_failures(root_id, path, reason) VALUES (?, ?, ?)').run(
        rootId,
        f.path,
        f.reason,
      );
  }

  /** Everything that could not be read, by path: photos that failed to decode and what the walks could not take. */
  failures(): Array<{ path: string; reason: string }> {
    return this.stmt(
      `SELECT path, coalesce(error, 'failed') AS reason FROM images WHERE status = 'failed'
       UNION ALL SELECT path, reason FROM walk_failures ORDER BY path`,
    ).all() as Array<{ path: string; reason: string }>;
  }

  // ---- images

  counts(model: string): { total: number; indexed: number; failed: number; pending: number } {
    const row = this.stmt(
      `SELECT count(*) AS total,
              coalesce(sum(status = 'failed'), 0) AS failed,
              coalesce(sum(status = 'indexed' AND EXISTS
                (SELECT 1 FROM embeddings e WHERE e.image_id = images.id AND e.model = ?)), 0) AS indexed
       FROM images`,
    ).get(model) as { total: number; failed: number; indexed: number };
    return { ...row, pending: row.total - row.failed - row.indexed };
  }

  /** Photos indexed with another model version go back to pending: the next run re-embeds them. */
  requeueOtherModels(model: string): number {
    return this.stmt(
      `UPDATE images SET status = 'pending', updated_at = ? WHERE status = 'indexed'
       AND NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.image_id = images.id AND e.model = ?)`,
    ).run(Date.now(), model).changes;
  }

  image(id: number): ImageRecord | null {
    const row = this.stmt(`SELECT ${IMAGE_COLUMNS} FROM images WHERE id = ?`).get(id) as ImageRow | undefined;
    return row ? toRecord(row) : null;
  }

  /** The records of these ids in one query (a page of search results), by id; ids not in the catalog are absent. */
  images(ids: readonly number[]): Map<number, ImageRecord> {
    const rows = this.stmt(
      `SELECT ${IMAGE_COLUMNS} FROM images WHERE id IN (SELECT value FROM json_each(?))`,
    ).all(JSON.stringify(ids)) as ImageRow[];
    return new Map(rows.map((row) => [row.id, toRecord(row)]));
  }

  imageByPath(path: string): ImageRecord | null {
    const row = this.stmt(`SELECT ${IMAGE_COLUMNS} FROM images WHERE path = ?`).get(path) as
      | ImageRow
      | undefined;
    return row ? toRecord(row) : null;
  }

  *allImages(): Iterable<ImageRecord> {
    // Paged by id, so the caller may write to the catalog between rows (an iterating statement would block it).
    let after = 0;
    for (;;) {
      const rows = this.stmt(`SELECT ${IMAGE_COLUMNS} FROM images WHERE id > ? ORDER BY id LIMIT 500`).all(
        after,
      ) as ImageRow[];
      if (rows.length === 0) return;
      for (const row of rows) yield toRecord(row);
      after = (rows.at(-1) as ImageRow).id;
    }
  }

  knownFiles(rootId: number): KnownFile[] {
    return this.stmt(
      'SELECT id, path, bytes, mtime_ms AS mtimeMs, hash, status FROM images WHERE root_id = ?',
    ).all(rootId) as KnownFile[];
  }

  insertPending(rootId: number, root: string, path: string, bytes: number, mtimeMs: number): number {
    const id = Number(
      this.stmt(
        `INSERT INTO images(root_id, path, bytes, mtime_ms, type, status, updated_at)
         VALUES (?, ?, ?, ?, ?, 'pending', ?)`,
      ).run(rootId, path, bytes, mtimeMs, photoType(path), Date.now()).lastInsertRowid,
    );
    this.writeKeywords(id, root, path);
    return id;
  }

  /** A changed file goes back to pending (it keeps its vector until the new one replaces it). */
  markChanged(id: number, bytes: number, mtimeMs: number): void {
    this.stmt(
      `UPDATE images SET bytes = ?, mtime_ms = ?, status = 'pending', error = NULL, updated_at = ? WHERE id = ?`,
    ).run(bytes, mtimeMs, Date.now(), id);
  }

  /** Same content, new size/mtime (touched, or copied back): nothing to re-embed. */
  touch(id: number, bytes: number, mtimeMs: number): void {
    this.stmt('UPDATE images SET bytes = ?, mtime_ms = ?, updated_at = ? WHERE id = ?').run(
      bytes,
      mtimeMs,
      Date.now(),
      id,
    );
  }

  /** A moved or renamed photo keeps its id, vector and descriptions. */
  repath(id: number, rootId: number, root: string, path: string, bytes: number, mtimeMs: number): void {
    this.stmt(
      'UPDATE images SET root_id = ?, path = ?, bytes = ?, mtime_ms = ?, updated_at = ? WHERE id = ?',
    ).run(rootId, path, bytes, mtimeMs, Date.now(), id);
    this.writeKeywords(id, root, path);
  }

  deleteImage(id: number): void {
    this.stmt('DELETE FROM keywords WHERE rowid = ?').run(id);
    this.stmt('DELETE FROM images WHERE id = ?').run(id);
  }

  setIndexed(id: number, image: IndexedImage, model: string, q: Buffer, scale: number): void {
    this.stmt(
      `UPDATE images SET bytes = ?, mtime_ms = ?, hash = ?, width = ?, height = ?, taken_at = ?, camera = ?,
       type = ?, status = 'indexed', error = NULL, updated_at = ? WHERE id = ?`,
    ).run(
      image.bytes,
      image.mtimeMs,
      image.hash,
      image.width,
      image.height,
      image.takenAt,
      image.camera,
      image.type,
      Date.now(),
      id,
    );
    // New bytes: what other model sets made of the old ones is stale (a switch in progress redoes it).
    this.stmt('DELETE FROM embeddings WHERE image_id = ? AND model != ?').run(id, model);
    this.stmt('DELETE FROM classes WHERE image_id = ? AND model != ?').run(id, model);
    this.setVector(id, model, q, scale);
  }

  /** A photo's vector of one model set, beside those of other sets. */
  setVector(id: number, model: string, q: Buffer, scale: number): void {
    this.stmt(
      `INSERT INTO embeddings(image_id, model, scale, q) VALUES (?, ?, ?, ?)
       ON CONFLICT(image_id, model) DO UPDATE SET scale = excluded.scale, q = excluded.q`,
    ).run(id, model, scale, q);
  }

  /** Model sets that have vectors here, the most vectors first. */
  vectorModels(): string[] {
    return (
      this.stmt('SELECT model FROM embeddings GROUP BY model ORDER BY count(*) DESC').all() as Array<{
        model: string;
      }>
    ).map((r) => r.model);
  }

  /** Drops the vectors and classes of every model set but these. */
  keepModels(models: readonly string[]): void {
    const list = models.map(() => '?').join(',');
    this.db.prepare(`DELETE FROM embeddings WHERE model NOT IN (${list})`).run(...models);
    this.db.prepare(`DELETE FROM classes WHERE model NOT IN (${list})`).run(...models);
  }

  /** Indexed photos of these roots without a vector of this model set. */
  missingVectors(rootIds: readonly number[], model: string): PendingPhoto[] {
    return this.missingFrom('embeddings', rootIds, model);
  }

  /** Indexed photos of these roots with no classes of this model set yet (indexed before classes were kept). */
  missingClasses(rootIds: readonly number[], model: string): PendingPhoto[] {
    return this.missingFrom('classes', rootIds, model);
  }

  private missingFrom(
    table: 'embeddings' | 'classes',
    rootIds: readonly number[],
    model: string,
  ): PendingPhoto[] {
    if (rootIds.length === 0) return [];
    return this.db
      .prepare(
        `SELECT id, path, hash FROM images WHERE status = 'indexed'
         AND root_id IN (${rootIds.map(() => '?').join(',')})
         AND NOT EXISTS (SELECT 1 FROM ${table} t WHERE t.image_id = images.id AND t.model = ?) ORDER BY id`,
      )
      .all(...rootIds, model) as PendingPhoto[];
  }

  setFailed(
    id: number,
    reason: string,
    stat: { bytes: number; mtimeMs: number; hash: string | null } | null,
  ): void {
    if (stat) {
      this.stmt(
        `UPDATE images SET status = 'failed', error = ?, bytes = ?, mtime_ms = ?, hash = ?, updated_at = ? WHERE id = ?`,
      ).run(reason, stat.bytes, stat.mtimeMs, stat.hash, Date.now(), id);
    } else {
      this.stmt(`UPDATE images SET status = 'failed', error = ?, updated_at = ? WHERE id = ?`).run(
        reason,
        Date.now(),
        id,
      );
    }
    // A file that no longer decodes must not be found by its old vector.
    this.stmt('DELETE FROM embeddings WHERE image_id = ?').run(id);
    this.stmt('DELETE FROM classes WHERE image_id = ?').run(id);
  }

  pending(rootIds: readonly number[]): Array<{ id: number; path: string; rootId: number }> {
    if (rootIds.length === 0) return [];
    return this.db
      .prepare(
        `SELECT id, path, root_id AS rootId FROM images WHERE status = 'pending'
         AND root_id IN (${rootIds.map(() => '?').join(',')}) ORDER BY id`,
      )
      .all(...rootIds) as Array<{ id: number; path: string; rootId: number }>;
  }

  imageIdsOfRoot(rootId: number): number[] {
    return (this.stmt('SELECT id FROM images WHERE root_id = ?').all(rootId) as Array<{ id: number }>).map(
      (r) => r.id,
    );
  }

  // ---- vectors

  vector(id: number, model: string): { q: Buffer; scale: number } | null {
    return (
      (this.stmt('SELECT q, scale FROM embeddings WHERE image_id = ? AND model = ?').get(id, model) as
        | { q: Buffer; scale: number }
        | undefined) ?? null
    );
  }

  vectorCount(model: string): number {
    return (this.stmt('SELECT count(*) AS n FROM embeddings WHERE model = ?').get(model) as { n: number }).n;
  }

  *vectors(model: string): Iterable<{ id: number; q: Buffer; scale: number }> {
    let after = 0;
    for (;;) {
      const rows = this.stmt(
        'SELECT image_id AS id, q, scale FROM embeddings WHERE model = ? AND image_id > ? ORDER BY image_id LIMIT 2000',
      ).all(model, after) as Array<{ id: number; q: Buffer; scale: number }>;
      if (rows.length === 0) return;
      yield* rows;
      after = (rows.at(-1) as { id: number }).id;
    }
  }

  // ---- class probabilities (top classes, see fusion/classes.ts)

  setClasses(id: number, model: string, top: Buffer): void {
    this.stmt(
      `INSERT INTO classes(image_id, model, top) VALUES (?, ?, ?)
       ON CONFLICT(image_id, model) DO UPDATE SET top = excluded.top`,
    ).run(id, model, top);
  }

  *classRows(model: string): Iterable<{ id: number; top: Buffer }> {
    let after = 0;
    for (;;) {
      const rows = this.stmt(
        'SELECT image_id AS id, top FROM classes WHERE model = ? AND image_id > ? ORDER BY image_id LIMIT 5000',
      ).all(model, after) as Array<{ id: number; top: Buffer }>;
      if (rows.length === 0) return;
      yield* rows;
      after = (rows.at(-1) as { id: number }).id;
    }
  }

  lastVectorSeq(): number {
    return (this.stmt('SELECT coalesce(max(seq), 0) AS s FROM vector_log').get() as { s: number }).s;
  }

  /** Images whose vector changed (added, replaced or deleted) after `seq`. */
  vectorChangesSince(seq: number): number[] {
    return (
      this.stmt('SELECT DISTINCT image_id AS id FROM vector_log WHERE seq > ?').all(seq) as Array<{
        id: number;
      }>
    ).map((r) => r.id);
  }

  pruneVectorLog(upTo: number): void {
    this.stmt('DELETE FROM vector_log WHERE seq <= ?').run(upTo);
  }

  // ---- filters and keywords

  filterIds(filters: SearchFilters): Set<number> | null {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filters.rootId !== undefined) {
      where.push('root_id = ?');
      args.push(filters.rootId);
    }
    if (filters.folder !== undefined) {
      const folder = filters.folder.endsWith(sep) ? filters.folder.slice(0, -1) : filters.folder;
      const prefix = folder + sep;
      // SQLite's substr counts characters, JavaScript's length UTF-16 units (📷 is one and two): let SQLite count.
      where.push('substr(path, 1, length(?)) = ?');
      args.push(prefix, prefix);
    }
    const day = `substr(coalesce(taken_at, strftime('%Y-%m-%dT%H:%M:%S', mtime_ms / 1000, 'unixepoch', 'localtime')), 1, 10)`;
    if (filters.from !== undefined) {
      where.push(`${day} >= ?`);
      args.push(filters.from);
    }
    if (filters.to !== undefined) {
      where.push(`${day} <= ?`);
      args.push(filters.to);
    }
    if (filters.types !== undefined) {
      where.push(`type IN (${filters.types.map(() => '?').join(',')})`);
      args.push(...filters.types);
    }
    if (where.length === 0) return null;
    const rows = this.db.prepare(`SELECT id FROM images WHERE ${where.join(' AND ')}`).all(...args) as Array<{
      id: number;
    }>;
    return new Set(rows.map((r) => r.id));
  }

  keyword(query: string, limit: number): Array<{ imageId: number; rank: number }> {
    const match = ftsQuery(query);
    if (!match) return [];
    return this.stmt(
      'SELECT rowid AS imageId, bm25(keywords, 4.0, 1.0, 2.0) AS rank FROM keywords WHERE keywords MATCH ? ORDER BY rank LIMIT ?',
    ).all(match, limit) as Array<{ imageId: number; rank: number }>;
  }

  private writeKeywords(id: number, root: string, path: string): void {
    const tags = (
      this.stmt(`SELECT text FROM tags WHERE image_id = ? AND status != 'rejected'`).all(id) as Array<{
        text: string;
      }>
    ).map((t) => t.text);
    const folders = relative(root, dirname(path));
    this.stmt('DELETE FROM keywords WHERE rowid = ?').run(id);
    this.stmt('INSERT INTO keywords(rowid, name, folders, tags) VALUES (?, ?, ?, ?)').run(
      id,
      ftsText(basename(path, extname(path))),
      ftsText(folders.split(sep).join(' ')),
      ftsText(tags.join(' ; ')),
    );
  }

  private refreshKeywords(imageId: number): void {
    const row = this.stmt(
      'SELECT i.path, r.path AS root FROM images i JOIN roots r ON r.id = i.root_id WHERE i.id = ?',
    ).get(imageId) as { path: string; root: string } | undefined;
    if (row) this.writeKeywords(imageId, row.root, row.path);
  }

  // ---- captions and tags

  descriptions(imageId: number): { captions: Caption[]; tags: Tag[] } {
    const order = (table: Described) =>
      `image_id = ? ORDER BY ${REVIEW_ORDER}, source = 'user' DESC, ${WEIGHT[table]} DESC, id`;
    const captions = this.described('captions', order('captions')).all(imageId) as Caption[];
    const tags = this.described('tags', order('tags')).all(imageId) as Tag[];
    return { captions, tags };
  }

  setAutoDescriptions(
    imageId: number,
    captions: ReadonlyArray<{ text: string; score: number }>,
    tags: ReadonlyArray<{ text: string; confidence: number }>,
  ): void {
    this.requireImage(imageId);
    this.transaction(() => {
      // A text the person already reviewed keeps its review; only its score is refreshed.
      const propose = (table: Described, text: string, weight: number) => {
        const w = WEIGHT[table];
        this.stmt(
          `INSERT INTO ${table}(image_id, text, ${w}, source, status) VALUES (?, ?, ?, 'auto', 'proposed')
           ON CONFLICT(image_id, text) DO UPDATE SET ${w} = CASE WHEN source = 'auto' THEN excluded.${w} ELSE ${w} END`,
        ).run(imageId, text, weight);
      };
      for (const table of ['captions', 'tags'] as const)
        this.stmt(`DELETE FROM ${table} WHERE image_id = ? AND source = 'auto' AND status = 'proposed'`).run(
          imageId,
        );
      for (const c of captions) propose('captions', c.text, c.score);
      for (const t of tags) propose('tags', t.text, t.confidence);
      this.refreshKeywords(imageId);
    });
  }

  reviewCaption(imageId: number, captionId: number, status: ReviewStatus): Caption {
    return this.transaction(() => {
      const row = this.describedRow('captions', imageId, captionId) as Caption;
      // One accepted caption per photo (it is what lands in XMP dc:description).
      if (status === 'accepted') this.demoteAcceptedCaptions(imageId);
      this.stmt('UPDATE captions SET status = ? WHERE id = ?').run(status, row.id);
      return { ...row, status };
    });
  }

  addCaption(imageId: number, text: string): Caption {
    const clean = this.cleanText(imageId, text, 'a caption');
    return this.transaction(() => {
      this.demoteAcceptedCaptions(imageId);
      return this.addUserText('captions', imageId, clean) as Caption;
    });
  }

  reviewTag(imageId: number, tagId: number, status: ReviewStatus): Tag {
    return this.transaction(() => {
      const row = this.describedRow('tags', imageId, tagId) as Tag;
      this.stmt('UPDATE tags SET status = ? WHERE id = ?').run(status, tagId);
      this.refreshKeywords(imageId);
      return { ...row, status };
    });
  }

  addTag(imageId: number, text: string): Tag {
    const clean = this.cleanText(imageId, text, 'a tag');
    return this.transaction(() => {
      const tag = this.addUserText('tags', imageId, clean) as Tag;
      this.refreshKeywords(imageId);
      return tag;
    });
  }

  /** Captions and tags share their columns but for the weight's name (WEIGHT). */
  private described(table: Described, where: string): Database.Statement {
    return this.stmt(`SELECT id, text, ${WEIGHT[table]}, source, status FROM ${table} WHERE ${where}`);
  }

  private describedRow(table: Described, imageId: number, id: number): Caption | Tag {
    const row = this.described(table, 'id = ? AND image_id = ?').get(id, imageId) as
      | Caption
      | Tag
      | undefined;
    const noun = table === 'captions' ? 'caption' : 'tag';
    if (!row) throw new ArgumentError(`${noun}Id`, `${noun} ${id} does not belong to image ${imageId}`);
    return row;
  }

  private cleanText(imageId: number, text: string, what: string): string {
    this.requireImage(imageId);
    const clean = text.trim();
    if (!clean) throw new ArgumentError('text', `${what} needs some text`);
    return clean;
  }

  /** The person's own text: accepted, taking over an automatic one of the same text. */
  private addUserText(table: Described, imageId: number, text: string): Caption | Tag {
    const w = WEIGHT[table];
    this.stmt(
      `INSERT INTO ${table}(image_id, text, ${w}, source, status) VALUES (?, ?, NULL, 'user', 'accepted')
       ON CONFLICT(image_id, text) DO UPDATE SET source = 'user', ${w} = NULL, status = 'accepted'`,
    ).run(imageId, text);
    return this.described(table, 'image_id = ? AND text = ?').get(imageId, text) as Caption | Tag;
  }

  private demoteAcceptedCaptions(imageId: number): void {
    this.stmt(`UPDATE captions SET status = 'proposed' WHERE image_id = ? AND status = 'accepted'`).run(
      imageId,
    );
  }

  private requireImage(imageId: number): void {
    if (!this.stmt('SELECT 1 FROM images WHERE id = ?').get(imageId)) {
      throw new ArgumentError('imageId', `image ${imageId} is not in the library`);
    }
  }

  // ---- jobs

  startJob(rootId: number | null): number {
    return Number(
      this.stmt(`INSERT INTO jobs(root_id, started_at, state) VALUES (?, ?, 'running')`).run(
        rootId,
        Date.now(),
      ).lastInsertRowid,
    );
  }

  finishJob(id: number, state: string, total: number, done: number, failed: number): void {
    this.stmt('UPDATE jobs SET finished_at = ?, state = ?, total = ?, done = ?, failed = ? WHERE id = ?').run(
      Date.now(),
      state,
      total,
      done,
      failed,
      id,
    );
  }
}

/** Accepted first, rejected last: the order a review list shows. */
const REVIEW_ORDER = `CASE status WHEN 'accepted' THEN 0 WHEN 'proposed' THEN 1 ELSE 2 END`;

/** The column that weighs an automatic caption (its similarity) or tag (its confidence); null for the person's. */
const WEIGHT = { captions: 'score', tags: 'confidence' } as const;
type Described = keyof typeof WEIGHT;

const IMAGE_COLUMNS = 'id, root_id, path, bytes, width, height, taken_at, camera, type, status, error';

function toRecord(row: ImageRow): ImageRecord {
  return {
    id: row.id,
    rootId: row.root_id,
    path: row.path,
    bytes: row.bytes,
    width: row.width,
    height: row.height,
    takenAt: row.taken_at,
    camera: row.camera,
    type: row.type as FileType | null,
    status: row.status,
    error: row.error,
  };
}

/** An indexed photo a model set still lacks a row for. */
type PendingPhoto = { id: number; path: string; hash: string | null };

const CJK = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\u30fc\u3005]/gu;

/** unicode61 keeps a run of kanji/kana as one token; one character per token lets a query find it anywhere. */
function ftsText(text: string): string {
  return text.normalize('NFKC').replace(CJK, ' $& ');
}

/**
 * A person's words as an FTS5 query: each word a prefix term (or, for CJK, a phrase of its characters),
 * joined by OR so bm25 ranks photos matching more words first. Only letters and digits reach FTS5 syntax.
 */
export function ftsQuery(query: string): string | null {
  const terms: string[] = [];
  for (const word of query.normalize('NFKC').split(/\s+/)) {
    const tokens = ftsText(word).match(/[\p{L}\p{N}\p{M}]+/gu) ?? [];
    if (tokens.length === 0) continue;
    // One letter as a prefix ("a", "I") would match every name with a word starting with it (hex ids, "and").
    if (tokens.length === 1 && /^[\p{Script=Latin}\p{N}]$/u.test(tokens[0] as string)) continue;
    terms.push(tokens.length === 1 ? `"${tokens[0]}"*` : `"${tokens.join(' ')}"`);
  }
  return terms.length > 0 ? terms.join(' OR ') : null;
}
