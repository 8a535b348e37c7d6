/**
 * The catalog's schema as numbered migrations (PRAGMA user_version says how many ran). A migration is never
 * edited once shipped; a change is a new entry. Each runs in one transaction with the version bump.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: roots, images, vectors, descriptions, jobs, keyword search.
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;

  CREATE TABLE roots (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    added_at INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    root_id INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
    path TEXT NOT NULL UNIQUE,
    bytes INTEGER NOT NULL,
    mtime_ms INTEGER NOT NULL,
    -- sha256 of the bytes that were embedded; NULL until the file was read once.
    hash TEXT,
    width INTEGER,
    height INTEGER,
    -- EXIF DateTimeOriginal as local wall-clock 'YYYY-MM-DDTHH:MM:SS' (EXIF has no zone).
    taken_at TEXT,
    camera TEXT,
    type TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'indexed', 'failed')),
    error TEXT,
    updated_at INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX images_root ON images(root_id, status);
  CREATE INDEX images_hash ON images(hash);
  CREATE INDEX images_status ON images(status);

  -- The source of truth for vectors: int8 with a per-vector scale (see quantize.ts).
  CREATE TABLE embeddings (
    image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    scale REAL NOT NULL,
    q BLOB NOT NULL
  ) STRICT;
  CREATE INDEX embeddings_model ON embeddings(model);

  -- Every change to embeddings, in order: the saved HNSW file records the last seq it holds, and opening
  -- replays what came after (a crash between two saves loses nothing).
  CREATE TABLE vector_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, image_id INTEGER NOT NULL) STRICT;
  CREATE TRIGGER embeddings_logged_insert AFTER INSERT ON embeddings
    BEGIN INSERT INTO vector_log(image_id) VALUES (new.image_id); END;
  CREATE TRIGGER embeddings_logged_update AFTER UPDATE ON embeddings
    BEGIN INSERT INTO vector_log(image_id) VALUES (new.image_id); END;
  CREATE TRIGGER embeddings_logged_delete AFTER DELETE ON embeddings
    BEGIN INSERT INTO vector_log(image_id) VALUES (old.image_id); END;

  CREATE TABLE captions (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    score REAL,
    source TEXT NOT NULL CHECK (source IN ('auto', 'user')),
    status TEXT NOT NULL CHECK (status IN ('proposed', 'accepted', 'rejected')),
    UNIQUE (image_id, text)
  ) STRICT;

  CREATE TABLE tags (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    confidence REAL,
    source TEXT NOT NULL CHECK (source IN ('auto', 'user')),
    status TEXT NOT NULL CHECK (status IN ('proposed', 'accepted', 'rejected')),
    UNIQUE (image_id, text)
  ) STRICT;

  CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    root_id INTEGER,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    state TEXT NOT NULL,
    total INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0
  ) STRICT;

  -- Keyword search: rowid = images.id. Written by the catalog (CJK split into single characters, so a query
  -- of one kanji finds it inside a longer name); not a content table, so a rebuild is just re-inserting.
  CREATE VIRTUAL TABLE keywords USING fts5(name, folders, tags, tokenize = 'unicode61 remove_diacritics 2');
  `,
  // 2: what the last walk of each root saw, so an unmounted disk is held offline instead of emptied.
  `
  -- st_dev of the root folder at the last walk that was taken as it is.
  ALTER TABLE roots ADD COLUMN device TEXT;
  -- Why the last walk left this root alone (emptied, another device, most photos gone at once); NULL when it did not.
  ALTER TABLE roots ADD COLUMN held TEXT;
  `,
  // 3: what the last walk of each root could not take (a folder it could not list, a name not in UTF-8), and why.
  `
  CREATE TABLE walk_failures (
    root_id INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (root_id, path)
  ) STRICT;
  `,
  `
  -- 4: each photo's most probable ImageNet classes (the concept score of search), from the same CNN pass as its
  -- vector; depends on nothing but images. Layout (fusion/classes.ts): per class uint16 id (little-endian) +
  -- uint8 log-probability, most probable first.
  CREATE TABLE classes (
    image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    top BLOB NOT NULL
  ) STRICT;
  `,
  `
  -- 5: a vector (and the classes of its CNN pass) per photo AND model set (joint/model-set.ts): while a library
  -- moves to another set, the old set's rows serve search and the new set's are written beside them. The log
  -- keeps only the served set's changes (meta 'vectors' names it; absent: every change), what the HNSW file holds.
  CREATE TABLE embeddings_by_set (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    scale REAL NOT NULL,
    q BLOB NOT NULL,
    PRIMARY KEY (image_id, model)
  ) STRICT;
  INSERT INTO embeddings_by_set SELECT image_id, model, scale, q FROM embeddings;
  DROP TABLE embeddings;
  ALTER TABLE embeddings_by_set RENAME TO embeddings;
  CREATE INDEX embeddings_model ON embeddings(model);
  CREATE TRIGGER embeddings_logged_insert AFTER INSERT ON embeddings
    WHEN coalesce((SELECT value FROM meta WHERE key = 'vectors'), new.model) = new.model
    BEGIN INSERT INTO vector_log(image_id) VALUES (new.image_id); END;
  CREATE TRIGGER embeddings_logged_update AFTER UPDATE ON embeddings
    WHEN coalesce((SELECT value FROM meta WHERE key = 'vectors'), new.model) = new.model
    BEGIN INSERT INTO vector_log(image_id) VALUES (new.image_id); END;
  CREATE TRIGGER embeddings_logged_delete AFTER DELETE ON embeddings
    WHEN coalesce((SELECT value FROM meta WHERE key = 'vectors'), old.model) = old.model
    BEGIN INSERT INTO vector_log(image_id) VALUES (old.image_id); END;

  CREATE TABLE classes_by_set (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    top BLOB NOT NULL,
    PRIMARY KEY (image_id, model)
  ) STRICT;
  INSERT INTO classes_by_set SELECT c.image_id, e.model, c.top FROM classes c JOIN embeddings e USING (image_id);
  DROP TABLE classes;
  ALTER TABLE classes_by_set RENAME TO classes;
  `,
];
