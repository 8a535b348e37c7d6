"""The prepared Flickr8k data (written by `npm run data:prepare`) and the batches training reads from it.

The contract, in one folder (e.g. `.cache/data/flickr8k/`):

- `images.tsv`        header `index image split sha256`; split is train / val / test / none.
- `fne.i8`            int8, row-major [images, 17056]: the ternary Full-Network Embedding (-1 / 0 / +1).
- `one_layer.f32`     float32 LE [images, 1280]: the standardized `Conv_1` vector (not ternary).
- `layers.json`       [{name, kind, offset, channels}] for the 52 conv layers, in FNE column order.
- `vocab.txt`         one token a line; id = line index; 0 `<pad>`, 1 `<unk>`.
- `captions.tsv`      header `index image_index n caption`.
- `tokens.i32`        int32: every caption's token ids, concatenated.
- `offsets.i32`       int32 [captions + 1]: caption c is tokens[offsets[c]:offsets[c+1]].
- `caption_image.i32` int32 [captions]: the image index of each caption.
- `meta.json`         counts, dims, vocabulary size, sha256 of each file.

Everything is opened with numpy memmaps; nothing is copied until a split is asked for.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

FEATURE_KINDS = ("fne", "one-layer", "fne-blocks", "fne-last")
TERNARY_KINDS = ("fne", "fne-blocks", "fne-last")
SPLITS = ("train", "val", "test", "none")

FNE_FILE = "fne.i8"
ONE_LAYER_FILE = "one_layer.f32"
LAST_LAYER = "MobilenetV2/Conv_1/Relu6"

# meta.json "format" this reader knows (src-main/engine/datasets/prepare.ts PREPARED_FORMAT).
KNOWN_FORMATS = ("sagasu-flickr8k/1",)

CONTRACT_FILES = (
    "images.tsv",
    FNE_FILE,
    ONE_LAYER_FILE,
    "layers.json",
    "vocab.txt",
    "captions.tsv",
    "tokens.i32",
    "offsets.i32",
    "caption_image.i32",
    "meta.json",
)


class DataError(Exception):
    """The data folder does not hold the contract (missing file, wrong size, wrong hash)."""


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str
    offset: int
    channels: int


@dataclass
class Span:
    """A contiguous run of columns of one layer inside a feature kind's vector."""

    name: str
    kind: str
    offset: int  # in the feature kind's own vector
    channels: int
    source_offset: int  # in the full FNE


def sha256_file(path: str, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def _memmap(path: str, dtype, shape: tuple[int, ...]) -> np.ndarray:
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    actual = os.path.getsize(path)
    if actual != expected:
        raise DataError(f"{path}: {actual} bytes, expected {expected} ({np.dtype(dtype).name} {list(shape)})")
    if expected == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=np.dtype(dtype).newbyteorder("<"), mode="r", shape=shape)


def _read_tsv(path: str, header: Sequence[str]) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or rows[0] != list(header):
        got = rows[0] if rows else "nothing"
        raise DataError(f"{path}: header {got}, expected {list(header)}")
    return rows[1:]


def _file_hashes(meta: dict) -> dict[str, str]:
    """The `file -> sha256` map in meta.json, whatever its exact shape ({"files": {name: sha | {sha256}}}
    or {"sha256": {name: sha}})."""
    for key in ("files", "sha256", "hashes"):
        block = meta.get(key)
        if isinstance(block, dict):
            out = {}
            for name, value in block.items():
                if isinstance(value, str):
                    out[name] = value
                elif isinstance(value, dict) and isinstance(value.get("sha256"), str):
                    out[name] = value["sha256"]
            if out:
                return out
    return {}


def find_in_meta(meta, *words: str):
    """The first value in meta (searched depth-first) whose key path contains every word (case-insensitive)."""

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                p = f"{path}.{key}".lower()
                if not isinstance(value, (dict, list)) and all(w in p for w in words):
                    return value
                found = walk(value, p)
                if found is not None:
                    return found
        return None

    return walk(meta, "")


class Flickr8kData:
    """The whole prepared dataset, opened read-only."""

    def __init__(self, root: str, verify: bool = False):
        self.root = os.path.abspath(root)
        missing = [n for n in CONTRACT_FILES if not os.path.exists(os.path.join(self.root, n))]
        if missing:
            raise DataError(
                f"{self.root} is not a prepared dataset: missing {', '.join(missing)} "
                "(run `npm run data:prepare`, or training/tests/make_synthetic.py for a synthetic one)"
            )
        p = lambda n: os.path.join(self.root, n)  # noqa: E731
        self.meta_path = p("meta.json")
        with open(self.meta_path, encoding="utf-8") as f:
            self.meta = json.load(f)
        self.meta_sha256 = sha256_file(self.meta_path)
        fmt = self.meta.get("format")
        if fmt is not None and fmt not in KNOWN_FORMATS:
            raise DataError(f"{self.meta_path}: format {fmt!r}, this reader knows {', '.join(KNOWN_FORMATS)}")

        rows = _read_tsv(p("images.tsv"), ("index", "image", "split", "sha256"))
        self.image_names = [r[1] for r in rows]
        self.image_split = np.array([r[2] for r in rows])
        for i, r in enumerate(rows):
            if int(r[0]) != i:
                raise DataError(f"images.tsv: row {i + 1} has index {r[0]}")
            if r[2] not in SPLITS:
                raise DataError(f"images.tsv: row {i + 1} has split {r[2]!r}")
        self.num_images = len(rows)

        with open(p("layers.json"), encoding="utf-8") as f:
            self.layers = [Layer(l["name"], l["kind"], int(l["offset"]), int(l["channels"])) for l in json.load(f)]
        self.fne_dim = sum(l.channels for l in self.layers)
        expect = 0
        for l in self.layers:
            if l.offset != expect:
                raise DataError(f"layers.json: {l.name} at offset {l.offset}, expected {expect}")
            expect += l.channels
        # meta.json names the one-layer tensor (ResNet-50: the last block output); older MobileNetV2 folders
        # and the synthetic test sets do not, and theirs is Conv_1.
        one = self.meta.get("oneLayer")
        self.last_layer = one["name"] if isinstance(one, dict) and isinstance(one.get("name"), str) else LAST_LAYER
        last = [l for l in self.layers if l.name == self.last_layer]
        self.one_layer_dim = last[0].channels if last else 1280

        for key, have in (("fneDim", self.fne_dim), ("oneLayerDim", self.one_layer_dim)):
            if isinstance(self.meta.get(key), int) and self.meta[key] != have:
                raise DataError(f"meta.json says {key} {self.meta[key]}, layers.json gives {have}")
        self.fne = _memmap(p(FNE_FILE), np.int8, (self.num_images, self.fne_dim))
        self.one_layer = _memmap(p(ONE_LAYER_FILE), np.float32, (self.num_images, self.one_layer_dim))

        with open(p("vocab.txt"), encoding="utf-8") as f:
            self.vocab = f.read().split("\n")
        if self.vocab and self.vocab[-1] == "":
            self.vocab.pop()
        if self.vocab[:2] != ["<pad>", "<unk>"]:
            raise DataError(f"vocab.txt: first tokens {self.vocab[:2]}, expected ['<pad>', '<unk>']")

        n_tokens = os.path.getsize(p("tokens.i32")) // 4
        self.tokens = _memmap(p("tokens.i32"), np.int32, (n_tokens,))
        n_captions = os.path.getsize(p("caption_image.i32")) // 4
        self.caption_image = np.asarray(_memmap(p("caption_image.i32"), np.int32, (n_captions,)))
        self.offsets = np.asarray(_memmap(p("offsets.i32"), np.int32, (n_captions + 1,))).astype(np.int64)
        self.num_captions = n_captions
        self.lengths = np.diff(self.offsets)
        if n_captions and (self.offsets[0] != 0 or self.offsets[-1] != n_tokens or (self.lengths < 0).any()):
            raise DataError("offsets.i32 does not cut tokens.i32 into captions")
        if n_tokens and (int(self.tokens.min()) < 0 or int(self.tokens.max()) >= len(self.vocab)):
            raise DataError("tokens.i32 holds ids outside the vocabulary")
        if n_captions and (self.caption_image.min() < 0 or self.caption_image.max() >= self.num_images):
            raise DataError("caption_image.i32 holds image indexes outside images.tsv")
        self.caption_split = self.image_split[self.caption_image] if n_captions else np.array([], dtype=str)

        if verify:
            self.verify()

    # -- integrity -------------------------------------------------------------------------------------------

    def verify(self) -> None:
        """Check each file against the sha256 that meta.json records for it (where it records one)."""
        for name, want in _file_hashes(self.meta).items():
            path = os.path.join(self.root, name)
            if name == "meta.json" or not os.path.exists(path):
                continue
            got = sha256_file(path)
            if got != want:
                raise DataError(f"{path}: sha256 {got}, but meta.json says {want}")

    def meta_value(self, *words: str):
        return find_in_meta(self.meta, *words)

    def tokenizer_version(self) -> str | None:
        """meta.json's `tokenizer` (a version string such as "en-1"), as a string; None when absent."""
        value = self.meta.get("tokenizer")
        if isinstance(value, dict):
            value = value.get("version")
        if value is None:
            value = find_in_meta(self.meta, "tokenizer")
        return None if value is None else str(value)

    # -- images ----------------------------------------------------------------------------------------------

    def split_images(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.image_split == split)

    def spans(self, kind: str) -> list[Span]:
        """The layers a feature kind is made of, with their columns in its vector ([] for one-layer)."""
        if kind == "one-layer":
            return []
        if kind == "fne":
            chosen = self.layers
        elif kind == "fne-blocks":
            # MobileNetV2's blocks end in a `project` conv; ResNet-50's layer map marks its block outputs.
            chosen = [
                l
                for l in self.layers
                if l.kind == "block" or l.name.endswith("/project/add_fold") or l.name == self.last_layer
            ]
        elif kind == "fne-last":
            chosen = [l for l in self.layers if l.name == self.last_layer]
        else:
            raise ValueError(f"unknown feature kind {kind!r} (one of {', '.join(FEATURE_KINDS)})")
        if not chosen:
            raise DataError(f"layers.json has no layer for feature kind {kind}")
        out, offset = [], 0
        for l in chosen:
            out.append(Span(l.name, l.kind, offset, l.channels, l.offset))
            offset += l.channels
        return out

    def feature_dim(self, kind: str) -> int:
        if kind == "one-layer":
            return self.one_layer_dim
        return sum(s.channels for s in self.spans(kind))

    def features(self, kind: str, image_indices: np.ndarray) -> np.ndarray:
        """Rows of one feature kind, compact: int8 for the ternary kinds (convert per batch), float32 else."""
        idx = np.asarray(image_indices, dtype=np.int64)
        if kind == "one-layer":
            return np.ascontiguousarray(self.one_layer[idx], dtype=np.float32)
        spans = self.spans(kind)
        rows = self.fne[idx]
        if kind == "fne":
            return np.ascontiguousarray(rows)
        cols = np.concatenate([np.arange(s.source_offset, s.source_offset + s.channels) for s in spans])
        return np.ascontiguousarray(rows[:, cols])

    # -- captions --------------------------------------------------------------------------------------------

    def split_captions(self, split: str) -> tuple[np.ndarray, int]:
        """Caption indexes of a split that have at least one token, and how many were skipped as empty."""
        ids = np.flatnonzero(self.caption_split == split)
        keep = ids[self.lengths[ids] > 0]
        return keep, int(len(ids) - len(keep))

    def caption_tokens(self, c: int) -> np.ndarray:
        return np.asarray(self.tokens[self.offsets[c] : self.offsets[c + 1]], dtype=np.int64)

    def pad(self, caption_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """int64 [batch, max length] token ids, 0-padded, and int64 [batch] lengths."""
        lengths = self.lengths[np.asarray(caption_ids, dtype=np.int64)]
        out = np.zeros((len(caption_ids), int(lengths.max()) if len(lengths) else 0), dtype=np.int64)
        for row, c in enumerate(caption_ids):
            out[row, : lengths[row]] = self.tokens[self.offsets[c] : self.offsets[c + 1]]
        return out, lengths.astype(np.int64)


@dataclass
class Split:
    """One split held in memory: its images' features, its captions and the row of each caption's image."""

    name: str
    kind: str
    image_indices: np.ndarray  # dataset image index of each row of `features`
    features: np.ndarray  # int8 (ternary kinds) or float32 (one-layer) [images, feature_dim]
    caption_ids: np.ndarray  # dataset caption indexes (non-empty ones)
    caption_rows: np.ndarray  # row in `features` of each caption's image
    skipped_empty: int = 0
    extra: dict = field(default_factory=dict)


def load_split(data: Flickr8kData, split: str, kind: str, max_captions: int | None = None) -> Split:
    images = data.split_images(split)
    captions, skipped = data.split_captions(split)
    if max_captions is not None:
        captions = captions[:max_captions]
    row_of = np.full(data.num_images, -1, dtype=np.int64)
    row_of[images] = np.arange(len(images))
    rows = row_of[data.caption_image[captions]]
    return Split(split, kind, images, data.features(kind, images), captions, rows, skipped)


def as_float(features: np.ndarray) -> np.ndarray:
    return features.astype(np.float32, copy=False)


def length_bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Positions 0..n-1 cut into batches of captions of (nearly) the same length.

    Shuffle everything, stable-sort by length (so captions of one length keep a random order: shuffled
    within buckets), cut into consecutive batches of `batch_size` (only the last one can be smaller; a
    batch spans at most a bucket boundary, so padding stays minimal), then shuffle the order of the
    batches (across buckets). Deterministic given the generator's state.
    """
    n = len(lengths)
    order = rng.permutation(n)
    order = order[np.argsort(lengths[order], kind="stable")]
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def epoch_batches(split: Split, data: Flickr8kData, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The batches (positions into split.caption_ids) of one epoch; a function of (seed, epoch) alone, so
    a resumed run sees exactly the batches an uninterrupted one does."""
    rng = np.random.default_rng([seed, epoch])
    return length_bucketed_batches(data.lengths[split.caption_ids], batch_size, rng)


def iterate_in_length_order(lengths: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Positions in batches of increasing length (for encoding a whole split; order does not matter)."""
    order = np.argsort(lengths, kind="stable")
    for i in range(0, len(order), batch_size):
        yield order[i : i + batch_size]
