"""Export a Japanese sentence encoder (training.train_ja) for the app: text encoder only, the image side being
the shipped model it was trained against.

    training/.venv/bin/python -m training.export_ja --run .cache/runs/fne-ja --out models/joint/fne-ja \
        --weights fp16 [--name fne-ja]

Writes `text_encoder.onnx` (the graph of training.export, same contract, opset 17), `vocab.txt`,
`fixtures.json` and `manifest.json` (language "ja", tokenizerVersion, dim, and `imageModel`: the name and the
manifest.json sha256 of the model whose image projection the encoder was trained against; the app pairs the
two only when that sha256 matches). The fixtures encode the sentences of the prepared folder's
`fixture_sentences.json` (written for the project, not data-set captions, whose texts may not ship), as
token ids from the app's tokenizer; onnxruntime must reproduce PyTorch within 1e-5.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from types import SimpleNamespace

import numpy as np
import onnx
import torch

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from training.export import CONTRACTS, IR_VERSION, OPSET, TEXT_FILE, TOLERANCE, _floats, _pad, sha256_bytes, text_graph  # noqa: E402
from training.model import TextEncoder  # noqa: E402
from training.train import load_checkpoint  # noqa: E402
from training.train_ja import FORMAT  # noqa: E402

FIXTURE_SENTENCES_FILE = "fixture_sentences.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.export_ja", description="Export a Japanese encoder.")
    p.add_argument("--run", required=True, help="run folder of training.train_ja (uses <run>/best.pt)")
    p.add_argument("--out", required=True)
    p.add_argument("--weights", choices=("fp32", "fp16"), default="fp16")
    p.add_argument("--name", default="fne-ja")
    return p.parse_args(argv)


@torch.no_grad()
def make_fixtures(text: TextEncoder, sentences: list[dict]) -> dict:
    """single: the first sentence; batch: the next four, ragged (0-padded); alone: each of the four by itself."""

    def encode(items: list[dict]) -> dict:
        tokens, lengths = _pad([s["ids"] for s in items])
        emb = text(torch.from_numpy(tokens), torch.from_numpy(lengths)).numpy()
        return {"captions": [s["text"] for s in items], "tokens": tokens.tolist(), "lengths": lengths.tolist(),
                "embedding": _floats(emb)}

    four = sentences[1:5]
    return {
        "tolerance": TOLERANCE,
        "note": "PyTorch outputs of the exported weights for sentences written for the project; onnxruntime must "
                "match each value within tolerance, and the app's tokenizer must give these token ids",
        "text": {"single": encode(sentences[:1]), "batch": encode(four), "alone": [encode([s]) for s in four]},
    }


def check_with_onnxruntime(out: str, fixtures: dict) -> dict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(os.path.join(out, TEXT_FILE), opts, providers=["CPUExecutionProvider"])
    worst = 0.0
    for case in [fixtures["text"]["single"], fixtures["text"]["batch"], *fixtures["text"]["alone"]]:
        (got,) = session.run(None, {"tokens": np.array(case["tokens"], dtype=np.int64),
                                    "lengths": np.array(case["lengths"], dtype=np.int64)})
        worst = max(worst, float(np.abs(got - np.array(case["embedding"], dtype=np.float32)).max()))
    batch = np.array(fixtures["text"]["batch"]["embedding"], dtype=np.float32)
    alone = np.array([a["embedding"][0] for a in fixtures["text"]["alone"]], dtype=np.float32)
    padding = float(np.abs(batch - alone).max())
    if worst > TOLERANCE or padding > TOLERANCE:
        raise SystemExit(f"export_ja: parity FAILED: max |diff| {worst:.3g}, padded vs alone {padding:.3g}")
    return {"onnxruntime": ort.__version__, "maxAbsDiff": worst, "paddedVsAloneMaxAbsDiff": padding,
            "tolerance": TOLERANCE}


def main(argv=None) -> int:
    args = parse_args(argv)
    path = os.path.join(args.run, "best.pt")
    if not os.path.exists(path):
        print(f"export_ja: {path} not found (train first: python -m training.train_ja ...)", file=sys.stderr)
        return 2
    ckpt = load_checkpoint(path)
    if ckpt.get("format") != FORMAT:
        print(f"export_ja: {path} is not a {FORMAT} checkpoint", file=sys.stderr)
        return 2
    cfg, targs, data_info = ckpt["config"], ckpt["args"], ckpt["data"]
    root = data_info["root"]
    with open(os.path.join(root, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    with open(os.path.join(root, FIXTURE_SENTENCES_FILE), encoding="utf-8") as f:
        sentences = json.load(f)
    if len(sentences) < 5 or any(not s["ids"] or 1 in s["ids"] for s in sentences):
        print(f"export_ja: {root}/{FIXTURE_SENTENCES_FILE} needs 5 sentences without unknown words", file=sys.stderr)
        return 2
    image_model = cfg["image_model"]
    with open(os.path.join(image_model["dir"], "manifest.json"), encoding="utf-8") as f:
        image_manifest = json.load(f)

    torch.set_num_threads(1)
    text = TextEncoder(cfg["vocab_size"], cfg["word_dim"], cfg["dim"])
    text.load_state_dict(ckpt["model"])
    text.eval()
    if args.weights == "fp16":
        with torch.no_grad():
            for p in text.parameters():
                p.copy_(p.half().float())

    os.makedirs(args.out, exist_ok=True)
    graph = text_graph(SimpleNamespace(text=text), args.weights)
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, os.path.join(args.out, TEXT_FILE))
    shutil.copyfile(os.path.join(root, "vocab.txt"), os.path.join(args.out, "vocab.txt"))
    fixtures = make_fixtures(text, sentences)
    parity = check_with_onnxruntime(args.out, fixtures)
    with open(os.path.join(args.out, "fixtures.json"), "w", encoding="utf-8") as f:
        json.dump(fixtures, f, ensure_ascii=False)
        f.write("\n")

    manifest = {
        "name": args.name,
        "format": FORMAT,
        "language": "ja",
        "role": "text-encoder",
        "imageModel": {"name": image_model["name"], "manifestSha256": image_model["manifestSha256"]},
        # The space the sentences land in is the image model's: its features and layers, for readers that
        # list models by kind.
        "features": image_manifest["features"],
        "featureDim": image_manifest["featureDim"],
        "layers": image_manifest.get("layers"),
        "dim": cfg["dim"],
        "wordDim": cfg["word_dim"],
        "vocabSize": cfg["vocab_size"],
        "tokenizerVersion": meta["tokenizer"],
        "weights": args.weights,
        "files": {n: sha256_bytes(os.path.join(args.out, n)) for n in (TEXT_FILE, "vocab.txt", "fixtures.json")},
        "contracts": {TEXT_FILE: CONTRACTS[TEXT_FILE]},
        "onnx": {"opset": OPSET, "irVersion": IR_VERSION},
        "training": {
            "loss": targs["loss"], "margin": targs["margin"], "dim": cfg["dim"], "wordDim": targs["word_dim"],
            "optimizer": "Adam", "lr": targs["lr"], "batch": targs["batch"], "clip": targs["clip"],
            "epochs": targs["epochs"], "seed": targs["seed"], "maxCaptions": targs["max_captions"],
            "threads": targs["threads"], "imageSide": "frozen: the image model's float16 projection",
            "gruInit": "the image model's English GRU" if targs.get("init_gru") else "random",
            "captions": "Flickr8k captions machine-translated into Japanese (Google NMT, JSALT 2018)",
        },
        "best": {"epoch": ckpt["epoch"], "val": ckpt["val"], "checkpoint": "best.pt"},
        "data": {"metaSha256": data_info["meta_sha256"], "imagesMetaSha256": data_info["images_meta_sha256"],
                 "captions": meta["captions"], "vocab": meta["vocab"]},
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "parity": parity,
    }
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")
    size = manifest["files"][TEXT_FILE]["bytes"] / 1e6
    print(f"export_ja: {args.out}: {args.name} ({args.weights}, {size:.2f} MB); parity max |diff| {parity['maxAbsDiff']:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
