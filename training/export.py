"""Export a trained joint space (best.pt) to ONNX for the app (onnxruntime-node).

    training/.venv/bin/python -m training.export --run runs/fne-sh --out models/joint/fne-sh [--weights fp16|int8]

Writes into --out:
- `text_encoder.onnx`      tokens int64 [batch, length] (0-padded), lengths int64 [batch]
                           -> embedding float32 [batch, D], unit L2 norm.
- `image_projection.onnx`  features float32 [batch, feature_dim] -> embedding float32 [batch, D], unit norm.
- `vocab.txt`              the training vocabulary (token id = line index).
- `fixtures.json`          inputs and PyTorch outputs for a parity test of the ONNX files.
- `manifest.json`          what the files are, their sha256, contracts, hyper-parameters, validation metrics.

The graphs are written with onnx.helper (opset 17, IR 8), node for node the PyTorch computation: embedding
Gather -> GRU over the padded batch -> the state at length-1 (GatherND) -> x / max(||x||, 1e-12). The image
projection is a single MatMul with no bias; its weight is the initializer `projection_weight`
[feature_dim, D], so W[layer columns] gives each layer's share of a score. With --weights fp16 every weight
is stored as float16 and Cast to float32 inside the graph (inputs and outputs stay float32), and the
fixtures come from the same fp16-rounded weights. With --weights int8 the projection weight is stored int8,
symmetric, one float32 scale per output column (`projection_weight_int8`, `projection_weight_scale`, zero
point 0), and Cast -> Mul by the scales gives `projection_weight` back (onnxruntime folds it into one float32
W at load); the text encoder is float16 as with --weights fp16; the fixtures come from the dequantized
weights. Not DequantizeLinear -> MatMul: onnxruntime's CPU provider (1.30) fuses that into MatMulNBits at
accuracy level 4, which quantizes the input too, per block of 32: 2e-3 off for float features, and 1.7e-5
even on ternary FNE rows of real photos, over the 1e-5 the app's parity tests hold every export to. Each export is run in onnxruntime against
the fixtures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch.nn.utils import parametrize

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from training.data import TERNARY_KINDS, DataError, Flickr8kData, as_float  # noqa: E402
from training.model import EPS, JointSpace, build  # noqa: E402
from training.train import FORMAT, load_checkpoint  # noqa: E402

OPSET = 17
PAPER_THRESHOLDS = {"positive": 0.15, "negative": -0.25}
IR_VERSION = 8
TOLERANCE = 1e-5
TEXT_FILE, IMAGE_FILE = "text_encoder.onnx", "image_projection.onnx"

CONTRACTS = {
    TEXT_FILE: {
        "inputs": {
            "tokens": "int64 [batch, length]: token ids (vocab.txt line index; 0 <pad>, 1 <unk>), each sentence "
            "from position 0, right-padded with 0",
            "lengths": "int64 [batch]: number of real tokens of each sentence, 1 <= lengths[b] <= length",
        },
        "outputs": {"embedding": "float32 [batch, D]: the sentence in the joint space, unit L2 norm"},
    },
    IMAGE_FILE: {
        "inputs": {
            "features": "float32 [batch, feature_dim]: the image features of the manifest's kind, columns in "
            "the order of `layers` (ternary -1/0/+1 for fne kinds; standardized Conv_1 for one-layer)",
        },
        "outputs": {"embedding": "float32 [batch, D]: the image in the joint space, unit L2 norm"},
    },
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.export", description="Export best.pt to ONNX.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run folder of training.train (uses <run>/best.pt)")
    src.add_argument("--checkpoint", help="a best.pt or last.pt file")
    p.add_argument("--out", required=True, help="folder for the ONNX files, vocab, manifest and fixtures")
    p.add_argument("--weights", choices=("fp32", "fp16", "int8"), default="fp32", help="stored weight precision")
    p.add_argument("--data", help="the prepared dataset (default: the one the run was trained on)")
    p.add_argument("--name", help="model name for the manifest (default: <features>-<loss>-d<dim>)")
    return p.parse_args(argv)


# -- graphs -------------------------------------------------------------------------------------------------


def _initializer(name: str, array: np.ndarray, weights: str, nodes: list, inits: list) -> None:
    """Add a float weight; fp16: stored as float16 and Cast to float32 in the graph under the same name."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    if weights == "fp16":
        inits.append(numpy_helper.from_array(array.astype(np.float16), f"{name}_fp16"))
        nodes.append(helper.make_node("Cast", [f"{name}_fp16"], [name], to=TensorProto.FLOAT, name=f"cast_{name}"))
    else:
        inits.append(numpy_helper.from_array(array, name))


def _normalize(x: str, out: str, nodes: list, inits: list) -> None:
    inits.append(numpy_helper.from_array(np.array(EPS, dtype=np.float32), "norm_eps"))
    nodes += [
        helper.make_node("ReduceL2", [x], ["norm"], axes=[1], keepdims=1, name="norm"),
        helper.make_node("Max", ["norm", "norm_eps"], ["norm_floor"], name="norm_floor"),
        helper.make_node("Div", [x, "norm_floor"], [out], name="normalize"),
    ]


def _model(graph, doc: str) -> onnx.ModelProto:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sagasu-training")
    m.ir_version = IR_VERSION
    m.doc_string = doc
    return m


def gru_onnx_weights(gru: torch.nn.GRU) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch GRU (gates r, z, n) -> ONNX GRU W, R, B (gates z, r, h), linear_before_reset=1."""
    h = gru.hidden_size

    def reorder(t: torch.Tensor) -> np.ndarray:
        t = t.detach().float().numpy()
        return np.concatenate([t[h : 2 * h], t[0:h], t[2 * h : 3 * h]])

    w = reorder(gru.weight_ih_l0)[None]  # [1, 3H, input]
    r = reorder(gru.weight_hh_l0)[None]  # [1, 3H, H]
    b = np.concatenate([reorder(gru.bias_ih_l0), reorder(gru.bias_hh_l0)])[None]  # [1, 6H]
    return w, r, b


def text_graph(model: JointSpace, weights: str) -> onnx.ModelProto:
    text = model.text
    dim = text.gru.hidden_size
    nodes, inits = [], []
    _initializer("embedding_weight", text.embed.weight.detach().numpy(), weights, nodes, inits)
    w, r, b = gru_onnx_weights(text.gru)
    _initializer("gru_W", w, weights, nodes, inits)
    _initializer("gru_R", r, weights, nodes, inits)
    _initializer("gru_B", b, weights, nodes, inits)
    inits += [
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), "one"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
    ]
    nodes += [
        helper.make_node("Gather", ["embedding_weight", "tokens"], ["words"], axis=0, name="embed"),  # [B, L, E]
        helper.make_node("Transpose", ["words"], ["words_t"], perm=[1, 0, 2], name="time_major"),  # [L, B, E]
        helper.make_node("GRU", ["words_t", "gru_W", "gru_R", "gru_B"], ["states4", ""], hidden_size=dim,
                         linear_before_reset=1, name="gru"),  # [L, 1, B, D]
        helper.make_node("Squeeze", ["states4", "axis1"], ["states_t"], name="squeeze"),  # [L, B, D]
        helper.make_node("Transpose", ["states_t"], ["states"], perm=[1, 0, 2], name="batch_major"),  # [B, L, D]
        helper.make_node("Sub", ["lengths", "one"], ["last0"], name="last"),
        helper.make_node("Max", ["last0", "zero"], ["last1"], name="last_floor"),
        helper.make_node("Unsqueeze", ["last1", "axis1"], ["last_index"], name="last_index"),  # [B, 1]
        helper.make_node("GatherND", ["states", "last_index"], ["hidden"], batch_dims=1, name="gather_last"),
    ]
    _normalize("hidden", "embedding", nodes, inits)
    graph = helper.make_graph(
        nodes,
        "sagasu_text_encoder",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "length"]),
         helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim])],
        inits,
    )
    return _model(graph, "Sagasu sentence encoder: word embeddings -> GRU -> state at the last token -> L2 norm")


def quantize_columns(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """W [F, D] -> int8 q [F, D] and float32 scale [D] with W ~ q * scale, symmetric, one scale per output
    column: a column's error then scales with that column's own range, not the largest in W."""
    peak = np.abs(w).max(axis=0).astype(np.float32)
    scale = np.where(peak > 0, peak / np.float32(127), np.float32(1)).astype(np.float32)  # an all-zero column stays 0
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale


def dequantize_columns(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """What the graph computes from them (Cast, Mul): q * scale in float32."""
    return q.astype(np.float32) * scale.astype(np.float32)


def image_graph(model: JointSpace, weights: str, quantized: tuple[np.ndarray, np.ndarray] | None = None) -> onnx.ModelProto:
    """quantized: the int8 weight and its scales (--weights int8), which the model's weight is the dequantization of."""
    linear = model.image.linear
    dim, feature_dim = linear.out_features, linear.in_features
    nodes, inits = [], []
    if weights == "int8":
        q, scale = quantized
        inits += [numpy_helper.from_array(q, "projection_weight_int8"),
                  numpy_helper.from_array(scale, "projection_weight_scale")]
        nodes += [  # DequantizeLinear would be fused into a kernel that quantizes the features too (see above)
            helper.make_node("Cast", ["projection_weight_int8"], ["projection_weight_q"], to=TensorProto.FLOAT,
                             name="cast_projection_weight"),
            helper.make_node("Mul", ["projection_weight_q", "projection_weight_scale"], ["projection_weight"],
                             name="scale_projection_weight"),  # [F, D] * [D]: one scale per output column
        ]
    else:
        _initializer("projection_weight", linear.weight.detach().numpy().T, weights, nodes, inits)  # [F, D]
    nodes.append(helper.make_node("MatMul", ["features", "projection_weight"], ["projected"], name="project"))
    _normalize("projected", "embedding", nodes, inits)
    graph = helper.make_graph(
        nodes,
        "sagasu_image_projection",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", feature_dim])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim])],
        inits,
    )
    return _model(graph, "Sagasu image projection: features @ projection_weight (no bias) -> L2 norm")


# -- fixtures -----------------------------------------------------------------------------------------------


def _floats(a: np.ndarray) -> list:
    """Nested lists of Python floats holding the exact float32 values (repr round-trips them)."""
    return np.asarray(a, dtype=np.float32).astype(np.float64).tolist()


def _pad(sentences: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(s) for s in sentences], dtype=np.int64)
    tokens = np.zeros((len(sentences), int(lengths.max())), dtype=np.int64)
    for i, s in enumerate(sentences):
        tokens[i, : len(s)] = s
    return tokens, lengths


def pick_fixture_inputs(data: Flickr8kData, kind: str) -> tuple[list[int], list[int], np.ndarray]:
    """Deterministic choices from the validation split: one caption, four captions of four different
    lengths (the first such in caption order, then ordered so the batch is ragged: long, short, mid, ...),
    and the features of its first three images."""
    split = "val" if len(data.split_captions("val")[0]) else "train"
    captions, _ = data.split_captions(split)
    # Captions the vocabulary fully covers, when there are any: the TypeScript parity test re-tokenizes the
    # fixture captions with the app's tokenizer, and an <unk> would hide a tokenizer mismatch.
    known = np.array([c for c in captions if not (data.caption_tokens(int(c)) == 1).any()], dtype=captions.dtype)
    if len(known) >= 4:
        captions = known
    single = int(captions[0])
    four, seen = [], set()
    for c in captions:
        n = int(data.lengths[c])
        if n not in seen:
            seen.add(n)
            four.append(int(c))
        if len(four) == 4:
            break
    if len(four) < 4:  # fewer than four distinct lengths in the data: take what there is
        four = (four + [int(c) for c in captions if int(c) not in four])[:4]
    four.sort(key=lambda c: -int(data.lengths[c]))
    four = [four[0], four[-1], four[1], four[2]] if len(four) == 4 else four
    images = data.split_images(split)[:3]
    return [single], four, data.features(kind, images)


@torch.no_grad()
def make_fixtures(model: JointSpace, data: Flickr8kData, kind: str) -> dict:
    single_ids, four_ids, features = pick_fixture_inputs(data, kind)
    caption_text = lambda c: " ".join(data.vocab[t] for t in data.caption_tokens(c))  # noqa: E731

    def encode(ids: list[int]) -> dict:
        tokens, lengths = _pad([data.caption_tokens(c).tolist() for c in ids])
        emb = model.text(torch.from_numpy(tokens), torch.from_numpy(lengths)).numpy()
        return {"captions": [caption_text(c) for c in ids], "tokens": tokens.tolist(), "lengths": lengths.tolist(),
                "embedding": _floats(emb)}

    feats = as_float(features)
    image_emb = model.image(torch.from_numpy(feats)).numpy()
    return {
        "tolerance": TOLERANCE,
        "note": "PyTorch outputs of the exported weights; onnxruntime must match each value within tolerance",
        "text": {
            "single": encode(single_ids),
            "batch": encode(four_ids),
            "alone": [encode([c]) for c in four_ids],
        },
        "image": {"features": _floats(feats), "embedding": _floats(image_emb)},
    }


def check_with_onnxruntime(out: str, fixtures: dict) -> dict:
    """Run both ONNX files on the fixtures; the largest difference from PyTorch must stay within tolerance."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    text = ort.InferenceSession(os.path.join(out, TEXT_FILE), opts, providers=["CPUExecutionProvider"])
    image = ort.InferenceSession(os.path.join(out, IMAGE_FILE), opts, providers=["CPUExecutionProvider"])
    worst = 0.0
    cases = [fixtures["text"]["single"], fixtures["text"]["batch"], *fixtures["text"]["alone"]]
    for case in cases:
        (got,) = text.run(None, {"tokens": np.array(case["tokens"], dtype=np.int64),
                                 "lengths": np.array(case["lengths"], dtype=np.int64)})
        worst = max(worst, float(np.abs(got - np.array(case["embedding"], dtype=np.float32)).max()))
    # The padded batch row by row against each sentence alone (PyTorch's own padding invariance).
    batch = np.array(fixtures["text"]["batch"]["embedding"], dtype=np.float32)
    alone = np.array([a["embedding"][0] for a in fixtures["text"]["alone"]], dtype=np.float32)
    padding_diff = float(np.abs(batch - alone).max())
    (got,) = image.run(None, {"features": np.array(fixtures["image"]["features"], dtype=np.float32)})
    worst = max(worst, float(np.abs(got - np.array(fixtures["image"]["embedding"], dtype=np.float32)).max()))
    if worst > TOLERANCE or padding_diff > TOLERANCE:
        raise SystemExit(f"export: parity check FAILED: onnxruntime vs PyTorch max |diff| {worst:.3g}, "
                         f"padded vs alone {padding_diff:.3g} (tolerance {TOLERANCE})")
    return {"onnxruntime": ort.__version__, "maxAbsDiff": worst, "paddedVsAloneMaxAbsDiff": padding_diff,
            "tolerance": TOLERANCE}


# -- manifest -----------------------------------------------------------------------------------------------


def sha256_bytes(path: str) -> dict:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return {"sha256": h.hexdigest(), "bytes": os.path.getsize(path)}


def main(argv=None) -> int:
    args = parse_args(argv)
    path = args.checkpoint or os.path.join(args.run, "best.pt")
    if not os.path.exists(path):
        print(f"export: {path} not found (train first: python -m training.train ...)", file=sys.stderr)
        return 2
    ckpt = load_checkpoint(path)
    if ckpt.get("format") != FORMAT:
        print(f"export: {path} is not a {FORMAT} checkpoint", file=sys.stderr)
        return 2
    cfg, targs = ckpt["config"], ckpt["args"]
    try:
        data = Flickr8kData(args.data or ckpt["data"]["root"])
    except DataError as e:
        print(f"export: {e}", file=sys.stderr)
        return 2
    if data.meta_sha256 != ckpt["data"]["meta_sha256"]:
        print(f"export: {data.root}/meta.json differs from the one the model was trained on "
              f"({data.meta_sha256} vs {ckpt['data']['meta_sha256']}); pass the right --data", file=sys.stderr)
        return 2

    torch.set_num_threads(1)
    model = build(cfg["vocab_size"], cfg["feature_dim"], cfg["dim"], cfg["word_dim"], rank=cfg.get("rank", 0))
    model.load_state_dict(ckpt["model"])
    model.eval()
    # A low-rank projection becomes the one [D, F] matrix that is exported, so rounding below acts on the
    # weight the graph holds, not on its factors.
    if parametrize.is_parametrized(model.image.linear, "weight"):
        parametrize.remove_parametrizations(model.image.linear, "weight", leave_parametrized=True)
    # The text encoder of an int8 export stays float16: it is 4 MB next to a 20+ MB projection, and a
    # GRU's rounding error feeds back into every later time step instead of staying in one product.
    text_weights = "fp16" if args.weights == "int8" else args.weights
    quantized = None
    with torch.no_grad():  # the fixtures must come from the weights that are shipped
        if text_weights == "fp16":
            for p in model.text.parameters():
                p.copy_(p.half().float())
        linear = model.image.linear
        if args.weights == "fp16":
            linear.weight.copy_(linear.weight.half().float())
        elif args.weights == "int8":
            quantized = quantize_columns(linear.weight.detach().numpy().T)
            linear.weight.copy_(torch.from_numpy(dequantize_columns(*quantized).T))

    os.makedirs(args.out, exist_ok=True)
    text_model, image_model = text_graph(model, text_weights), image_graph(model, args.weights, quantized)
    for m, name in ((text_model, TEXT_FILE), (image_model, IMAGE_FILE)):
        onnx.checker.check_model(m, full_check=True)
        onnx.save(m, os.path.join(args.out, name))
    shutil.copyfile(os.path.join(data.root, "vocab.txt"), os.path.join(args.out, "vocab.txt"))
    fixtures = make_fixtures(model, data, cfg["features"])
    parity = check_with_onnxruntime(args.out, fixtures)
    with open(os.path.join(args.out, "fixtures.json"), "w", encoding="utf-8") as f:
        json.dump(fixtures, f)
        f.write("\n")

    kind = cfg["features"]
    spans = cfg["spans"]
    meta = data.meta
    manifest = {
        "name": args.name or f"{kind}-{targs['loss']}-d{cfg['dim']}",
        "format": FORMAT,
        "features": kind,
        "featureDim": cfg["feature_dim"],
        "ternary": kind in TERNARY_KINDS,
        "layers": [s["name"] for s in spans] if kind in TERNARY_KINDS else None,
        "layerColumns": [{"name": s["name"], "kind": s["kind"], "offset": s["offset"], "channels": s["channels"],
                          "fneOffset": s["source_offset"]} for s in spans] if kind in TERNARY_KINDS else None,
        "dim": cfg["dim"],
        "wordDim": cfg["word_dim"],
        "vocabSize": cfg["vocab_size"],
        "tokenizerVersion": data.tokenizer_version(),
        "weights": args.weights,
        "textWeights": text_weights,
        "projectionWeight": {"file": IMAGE_FILE, "initializer": "projection_weight" + {"fp32": "", "fp16": "_fp16", "int8": "_int8"}[args.weights],
                             "shape": [cfg["feature_dim"], cfg["dim"]],
                             **({"scale": {"initializer": "projection_weight_scale", "axis": 1, "zeroPoint": 0,
                                           "note": "W = int8 * scale[column], symmetric per output column"}}
                                if args.weights == "int8" else {}),
                             "note": "embedding = normalize(features @ W); W rows follow layerColumns, so "
                                     "features[cols] @ W[cols] is a layer's share of the unnormalized vector"},
        "files": {n: sha256_bytes(os.path.join(args.out, n)) for n in (TEXT_FILE, IMAGE_FILE, "vocab.txt", "fixtures.json")},
        "contracts": CONTRACTS,
        "onnx": {"opset": OPSET, "irVersion": IR_VERSION},
        "training": {
            "features": targs["features"], "loss": targs["loss"], "margin": targs["margin"], "dim": targs["dim"],
            "wordDim": targs["word_dim"], "optimizer": "AdamW" if targs.get("weight_decay") else "Adam", "lr": targs["lr"], "batch": targs["batch"],
            "clip": targs["clip"], "featureDropout": targs.get("feature_dropout", 0.0),
            "weightDecay": targs.get("weight_decay", 0.0), "rank": targs.get("rank", 0),
            "epochs": targs["epochs"], "seed": targs["seed"],
            "maxCaptions": targs["max_captions"], "threads": targs["threads"],
        },
        "best": {"epoch": ckpt["epoch"], "val": ckpt.get("val") or ckpt["history"][-1]["val"],
                 "checkpoint": os.path.basename(path)},
        "data": {
            "metaSha256": data.meta_sha256,
            # Folders prepared before backbones could be chosen are MobileNetV2's (prepare.ts says the same).
            "backbone": (meta.get("cnn") or {}).get("backbone", "mobilenet_v2"),
            "cnnSha256": data.meta_value("cnn", "sha256"),
            "statsSha256": data.meta_value("stats", "sha256"),
            "images": meta.get("images"),
            "captions": meta.get("captions"),
            # Only when not the paper's: the engine ternarizes a photo's features with these for this model.
            **({"thresholds": meta["thresholds"]} if meta.get("thresholds", PAPER_THRESHOLDS) != PAPER_THRESHOLDS else {}),
        },
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "parity": parity,
    }
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    sizes = ", ".join(f"{n} {v['bytes'] / 1e6:.2f} MB" for n, v in manifest["files"].items() if n.endswith(".onnx"))
    print(f"export: {args.out}: {manifest['name']} ({args.weights}; {sizes}); onnxruntime parity "
          f"max |diff| {parity['maxAbsDiff']:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
