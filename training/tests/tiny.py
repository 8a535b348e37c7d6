"""Tiny end-to-end check of the training pipeline on synthetic data (about half a minute on one core).

    training/.venv/bin/python -m training.tests.tiny [--keep DIR]

Checks: the evaluation protocol (ties against the ground truth) and the loss on hand-made cases; the
batching (deterministic, every caption once, length-grouped); the feature kinds; padding invariance of the
sentence encoder; a short training whose loss falls and whose validation rsum rises; that a run killed in
the middle resumes from last.pt and ends bit-identical to an uninterrupted one; that resuming with other
arguments is refused; export (fp32, fp16 and int8) passing onnx.checker and the onnxruntime parity check;
training.quantize_check scoring the three precisions.
Plain asserts, no test framework. Exit code 0 = all passed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import onnx
import torch

from training import export as export_mod
from training import train as train_mod
from training.data import Flickr8kData, epoch_batches, length_bucketed_batches, load_split
from training.model import build, ranking_loss
from training.tests.make_synthetic import make

PASSED: list[str] = []


def check(name: str, condition: bool, detail: str = "") -> None:
    if not condition:
        raise AssertionError(f"FAILED: {name}{': ' + detail if detail else ''}")
    PASSED.append(name)
    print(f"  ok  {name}{'  (' + detail + ')' if detail else ''}", flush=True)


def run_quiet(fn, argv) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = fn(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue()


def test_protocol() -> None:
    # 3 images x 4 captions; caption j belongs to image rows[j].
    rows = np.array([0, 0, 1, 2])
    scores = np.array(
        [
            [0.9, 0.1, 0.9, 0.0],  # image 0: best own caption 0.9 ties with caption 2 (wrong) -> rank 2
            [0.0, 0.0, 0.5, 0.6],  # image 1: own caption 0.5, caption 3 above -> rank 2
            [0.1, 0.2, 0.3, 0.7],  # image 2: own caption 0.7 -> rank 1
        ],
        dtype=np.float32,
    )
    m = train_mod.rank_metrics(scores, rows)
    # i2t ranks [2, 2, 1]; t2i: cap0 col [0.9,0,0.1] -> 1; cap1 [0.1,0,0.2] -> 2 (0.2>=0.1);
    # cap2 [0.9,0.5,0.3] gt 0.5 -> 2; cap3 [0,0.6,0.7] gt 0.7 -> 1.
    check("protocol: annotation R@1 with a tie counted against", abs(m["i2t"]["r1"] - 100 / 3) < 1e-9, f"{m['i2t']['r1']:.2f}")
    check("protocol: retrieval R@1", abs(m["t2i"]["r1"] - 50.0) < 1e-9)
    check("protocol: medians", m["i2t"]["medr"] == 2.0 and m["t2i"]["medr"] == 1.0, f"{m['i2t']['medr']}, {m['t2i']['medr']}")
    check("protocol: rsum", abs(m["rsum"] - (100 / 3 + 100 + 100 + 50 + 100 + 100)) < 1e-9)


def test_loss() -> None:
    g = torch.Generator().manual_seed(0)
    im = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=1)
    ca = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=1)
    s = (im @ ca.t()).numpy()
    sh = mh = 0.0
    for i in range(5):
        ci = [max(0, 0.2 - s[i, i] + s[i, j]) for j in range(5) if j != i]  # image i, wrong captions
        ii = [max(0, 0.2 - s[i, i] + s[j, i]) for j in range(5) if j != i]  # caption i, wrong images
        sh += sum(ci) + sum(ii)
        mh += max(ci) + max(ii)
    check("loss: SH equals the brute-force sum", abs(float(ranking_loss(im, ca)) - sh) < 1e-5)
    check("loss: MH equals the brute-force hardest", abs(float(ranking_loss(im, ca, hardest=True)) - mh) < 1e-5)
    same = torch.zeros(5, 5, dtype=torch.bool)
    same[0, 1] = same[1, 0] = True
    masked = float(ranking_loss(im, ca, same_image=same))
    drop = max(0, 0.2 - s[0, 0] + s[0, 1]) + max(0, 0.2 - s[1, 1] + s[1, 0])
    drop += max(0, 0.2 - s[1, 1] + s[0, 1]) + max(0, 0.2 - s[0, 0] + s[1, 0])
    check("loss: two captions of one image are not negatives", abs(masked - (sh - drop)) < 1e-5)


def test_data(root: str) -> None:
    data = Flickr8kData(root, verify=True)
    dims = {k: data.feature_dim(k) for k in ("fne", "one-layer", "fne-blocks", "fne-last")}
    check("data: feature dims", dims == {"fne": 17056, "one-layer": 1280, "fne-blocks": 2784, "fne-last": 1280}, str(dims))
    rows = np.arange(5)
    last = data.features("fne-last", rows)
    check("data: fne-last = Conv_1 columns of the FNE", np.array_equal(last, np.asarray(data.fne[:5, 15776:])))
    blocks = data.features("fne-blocks", rows)
    spans = data.spans("fne-blocks")
    check("data: fne-blocks = 17 project layers + Conv_1", len(spans) == 18 and spans[-1].name.endswith("Conv_1/Relu6"))
    check("data: fne-blocks columns", np.array_equal(blocks[:, spans[1].offset : spans[1].offset + spans[1].channels],
                                                     np.asarray(data.fne[:5, spans[1].source_offset : spans[1].source_offset + spans[1].channels])))
    check("data: ternary", set(np.unique(data.fne[:50]).tolist()) <= {-1, 0, 1})
    train = load_split(data, "train", "fne")
    check("data: empty captions skipped", train.skipped_empty == 3 and (data.lengths[train.caption_ids] > 0).all())
    lengths = data.lengths[train.caption_ids]
    b1 = epoch_batches(train, data, 32, 7, 1)
    b2 = epoch_batches(train, data, 32, 7, 1)
    b3 = epoch_batches(train, data, 32, 7, 2)
    check("batches: deterministic given (seed, epoch)", all(np.array_equal(x, y) for x, y in zip(b1, b2)))
    check("batches: differ between epochs", not all(np.array_equal(x, y) for x, y in zip(b1, b3)))
    allpos = np.sort(np.concatenate(b1))
    check("batches: every caption exactly once", np.array_equal(allpos, np.arange(len(lengths))))
    spread = max(int(lengths[b].max() - lengths[b].min()) for b in b1)
    check("batches: grouped by length", spread <= 2, f"max length spread in a batch {spread}")
    order = [int(lengths[b].min()) for b in b1]
    check("batches: shuffled across buckets", order != sorted(order))
    small = length_bucketed_batches(np.array([3, 1, 2, 3, 1, 2, 3]), 3, np.random.default_rng(0))
    check("batches: sizes", sorted(len(b) for b in small) == [1, 3, 3])


def test_padding(root: str) -> None:
    data = Flickr8kData(root)
    torch.manual_seed(0)
    model = build(len(data.vocab), 1280, 32, 16).eval()
    captions, _ = data.split_captions("train")
    ids, seen = [], set()
    for c in captions:
        if int(data.lengths[c]) not in seen and len(ids) < 4:
            seen.add(int(data.lengths[c]))
            ids.append(int(c))
    tokens, lengths = data.pad(ids)
    with torch.no_grad():
        batch = model.text(torch.from_numpy(tokens), torch.from_numpy(lengths))
        alone = torch.cat([model.text(*map(torch.from_numpy, data.pad([c]))) for c in ids])
    check("model: padded batch = each sentence alone", float((batch - alone).abs().max()) < 1e-6,
          f"lengths {lengths.tolist()}")
    check("model: unit norm", float((batch.norm(dim=1) - 1).abs().max()) < 1e-6)


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training(root: str, work: str) -> str:
    common = ["--data", root, "--dim", "64", "--batch", "32", "--max-captions", "320", "--threads", "1",
              "--seed", "3", "--features", "fne", "--loss", "sh"]
    a, b = os.path.join(work, "run-a"), os.path.join(work, "run-b")
    t0 = time.perf_counter()
    code, log = run_quiet(train_mod.main, common + ["--epochs", "3", "--out", a])
    check("train: a 3-epoch run finishes", code == 0, f"{time.perf_counter() - t0:.1f} s")
    history = [json.loads(l) for l in open(os.path.join(a, "log.jsonl"))]
    check("train: log.jsonl has one line per epoch", [h["epoch"] for h in history] == [1, 2, 3])
    h1 = history[0]
    check("train: loss falls within epoch 1", h1["loss_last_quarter"] < h1["loss_first_quarter"],
          f"{h1['loss_first_quarter']:.2f} -> {h1['loss_last_quarter']:.2f} per caption")
    check("train: loss falls across epochs", history[-1]["loss"] < history[0]["loss"],
          " -> ".join(f"{h['loss']:.2f}" for h in history))
    check("train: validation rsum rises", history[-1]["val"]["rsum"] > history[0]["val"]["rsum"],
          " -> ".join(f"{h['val']['rsum']:.1f}" for h in history))
    check("train: 320 training captions, 3 empty ones skipped",
          h1["train_captions"] == 320 and h1["skipped_empty_captions"]["train"] == 3)
    check("train: checkpoints written", os.path.exists(os.path.join(a, "best.pt")) and os.path.exists(os.path.join(a, "last.pt")))
    best_epoch = max(history, key=lambda h: h["val"]["rsum"])["epoch"]
    check("train: best.pt is the best validation epoch", torch.load(os.path.join(a, "best.pt"), weights_only=True)["epoch"] == best_epoch)

    # Interrupted in the middle of epoch 2 (10 batches an epoch), then resumed.
    code, _ = run_quiet(train_mod.main, common + ["--epochs", "3", "--out", b, "--stop-after-batches", "14"])
    check("resume: the interrupted run stops", code == 75)
    check("resume: only epoch 1 was saved", torch.load(os.path.join(b, "last.pt"), weights_only=True)["epoch"] == 1)
    code, log = run_quiet(train_mod.main, common + ["--epochs", "3", "--out", b])
    check("resume: the second start resumes after epoch 1", code == 0 and "resuming" in log and "after epoch 1" in log)
    la = torch.load(os.path.join(a, "last.pt"), weights_only=True)
    lb = torch.load(os.path.join(b, "last.pt"), weights_only=True)
    check("resume: final weights bit-identical", same_state(la["model"], lb["model"]))
    oa, ob = la["optimizer"]["state"], lb["optimizer"]["state"]
    check("resume: optimizer state identical", all(same_state(oa[k], ob[k]) for k in oa))
    strip = lambda hs: [{k: v for k, v in h.items() if "seconds" not in k} for h in hs]  # noqa: E731
    hb = [json.loads(l) for l in open(os.path.join(b, "log.jsonl"))]
    check("resume: same losses and metrics every epoch", strip(history) == strip(hb))

    code, log = run_quiet(train_mod.main, common[:-2] + ["--loss", "mh", "--epochs", "3", "--out", a])
    check("resume: other arguments are refused", code == 2 and "loss" in log)
    code, log = run_quiet(train_mod.main, common + ["--epochs", "3", "--out", a])
    check("resume: a finished run has nothing to do", code == 0 and "nothing to do" in log)

    # Augmented views: a folder of the same photos trains (and says so); one of other photos is refused.
    same, other = os.path.join(work, "data-same"), os.path.join(work, "data-other")
    make(same, images=400, seed=0)
    make(other, images=300, seed=0)
    short = ["--data", root, "--dim", "32", "--batch", "32", "--max-captions", "64", "--threads", "1", "--epochs", "1"]
    code, log = run_quiet(train_mod.main, short + ["--augment", same, "--out", os.path.join(work, "run-aug")])
    check("augment: trains with a view of the same photos", code == 0 and "drawn from 2 views" in log, log.strip()[-200:])
    code, log = run_quiet(train_mod.main, short + ["--augment", other, "--out", os.path.join(work, "run-aug-other")])
    check("augment: a folder of other photos is refused, by name", code == 2 and "data-other" in log, log.strip()[-200:])

    # Weight averaging: the average is what validation scores and best.pt holds, and it resumes exactly.
    swa = common + ["--epochs", "3", "--average-from", "2"]
    c, d = os.path.join(work, "run-swa-c"), os.path.join(work, "run-swa-d")
    code, log = run_quiet(train_mod.main, swa + ["--out", c])
    hc = [json.loads(l) for l in open(os.path.join(c, "log.jsonl"))]
    check("average: epochs 2 and 3 score the average beside the raw weights",
          code == 0 and "val_unaveraged" not in hc[0] and all("val_unaveraged" in h for h in hc[1:]), log.strip()[-200:])
    check("average: epoch 2's average is its own weights (one model averaged)",
          hc[1]["val"] == hc[1]["val_unaveraged"] and hc[1]["val"] == history[1]["val"])
    check("average: epoch 3 scores the average of epochs 2 and 3, not the raw weights",
          hc[2]["val_unaveraged"] == history[2]["val"] and hc[2]["val"] != hc[2]["val_unaveraged"])
    lc = torch.load(os.path.join(c, "last.pt"), weights_only=True)
    best_c = torch.load(os.path.join(c, "best.pt"), weights_only=True)
    if best_c["epoch"] == 3:
        average = {k.removeprefix("module."): v for k, v in lc["averaged"].items() if k.startswith("module.")}
        check("average: best.pt holds the averaged weights, not the raw ones",
              same_state(best_c["model"], average) and not same_state(best_c["model"], lc["model"]))
    code, _ = run_quiet(train_mod.main, swa + ["--out", d, "--stop-after-batches", "24"])
    code, log = run_quiet(train_mod.main, swa + ["--out", d])
    ld = torch.load(os.path.join(d, "last.pt"), weights_only=True)
    check("average: an interrupted averaged run resumes to the same average",
          code == 0 and "after epoch 2" in log and same_state(lc["averaged"], ld["averaged"]))

    # The other kinds and MH train too (one short epoch each).
    for features, loss in (("one-layer", "mh"), ("fne-blocks", "sh"), ("fne-last", "mh")):
        out = os.path.join(work, f"run-{features}-{loss}")
        args = ["--data", root, "--dim", "32", "--batch", "32", "--max-captions", "96", "--threads", "1",
                "--features", features, "--loss", loss, "--epochs", "1", "--out", out]
        code, log = run_quiet(train_mod.main, args)
        check(f"train: {features} / {loss.upper()} runs", code == 0, log.strip().splitlines()[-1][:100])
    return a


def test_export(run: str, work: str) -> None:
    for weights in ("fp32", "fp16", "int8"):
        out = os.path.join(work, f"export-{weights}")
        code, log = run_quiet(export_mod.main, ["--run", run, "--out", out, "--weights", weights])
        check(f"export {weights}: runs (onnxruntime parity inside)", code == 0, log.strip().splitlines()[-1] if log.strip() else "")
        for name in ("text_encoder.onnx", "image_projection.onnx"):
            model = onnx.load(os.path.join(out, name))
            onnx.checker.check_model(model, full_check=True)
            ins = [(i.name, i.type.tensor_type.elem_type) for i in model.graph.input]
            outs = [(o.name, o.type.tensor_type.elem_type) for o in model.graph.output]
            want_in = ([("tokens", 7), ("lengths", 7)] if name.startswith("text") else [("features", 1)])
            check(f"export {weights}: {name} passes onnx.checker, opset 17, float32 i/o",
                  model.opset_import[0].version == 17 and ins == want_in and outs == [("embedding", 1)])
            if weights == "fp16" or (weights == "int8" and name.startswith("text")):
                kinds = {numpy_type(t.data_type) for t in model.graph.initializer
                         if t.data_type in (1, 10) and t.name != "norm_eps"}
                check(f"export {weights}: {name} stores float weights as float16", kinds == {"float16"})
            if weights == "int8" and name.startswith("image"):
                check_int8_projection(model, os.path.join(work, "export-fp32", name))
        manifest = json.load(open(os.path.join(out, "manifest.json")))
        for name, info in manifest["files"].items():
            from training.data import sha256_file
            check(f"export {weights}: manifest sha256 of {name}", sha256_file(os.path.join(out, name)) == info["sha256"])
        fixtures = json.load(open(os.path.join(out, "fixtures.json")))
        lengths = fixtures["text"]["batch"]["lengths"]
        check(f"export {weights}: fixtures hold 4 sentences of different lengths", len(set(lengths)) == 4, str(lengths))
        check(f"export {weights}: fixtures hold 3 feature rows", len(fixtures["image"]["features"]) == 3)
        check(f"export {weights}: manifest lists the 52 layers", len(manifest["layers"]) == 52 and manifest["weights"] == weights)
        image = onnx.load(os.path.join(out, "image_projection.onnx"))
        named = {t.name: t for t in image.graph.initializer}.get(manifest["projectionWeight"]["initializer"])
        check(f"export {weights}: the manifest names the projection weight initializer, {manifest['projectionWeight']['shape']}",
              named is not None and list(named.dims) == manifest["projectionWeight"]["shape"])
    check("export int8: the text encoder is the fp16 one, the manifest says so",
          json.load(open(os.path.join(work, "export-int8", "manifest.json")))["textWeights"] == "fp16"
          and open(os.path.join(work, "export-int8", "text_encoder.onnx"), "rb").read()
          == open(os.path.join(work, "export-fp16", "text_encoder.onnx"), "rb").read())
    code, log = run_quiet(export_mod.main, ["--run", os.path.join(work, "run-one-layer-mh"), "--out",
                                            os.path.join(work, "export-one-layer-int8"), "--weights", "int8"])
    check("export int8: float (one-layer) features pass the parity check too", code == 0, log.strip().splitlines()[-1])
    a = open(os.path.join(work, "export-fp32", "text_encoder.onnx"), "rb").read()
    code, _ = run_quiet(export_mod.main, ["--run", run, "--out", os.path.join(work, "export-again")])
    b = open(os.path.join(work, "export-again", "text_encoder.onnx"), "rb").read()
    check("export: deterministic (same bytes twice)", code == 0 and a == b)


def check_int8_projection(model: onnx.ModelProto, fp32_file: str) -> None:
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    q, scale = inits.get("projection_weight_int8"), inits.get("projection_weight_scale")
    check("export int8: W stored int8 [F, D] with one float32 scale per output column",
          q is not None and q.dtype == np.int8 and scale is not None and scale.dtype == np.float32
          and scale.shape == (q.shape[1],) and set(inits) == {"projection_weight_int8", "projection_weight_scale", "norm_eps"})
    ops = [(n.op_type, list(n.input)) for n in model.graph.node][:3]
    check("export int8: W = Cast(q) * scale, then the MatMul (no zero point: symmetric)",
          ops == [("Cast", ["projection_weight_int8"]), ("Mul", ["projection_weight_q", "projection_weight_scale"]),
                  ("MatMul", ["features", "projection_weight"])])
    w = numpy_helper.to_array(next(t for t in onnx.load(fp32_file).graph.initializer if t.name == "projection_weight"))
    err = np.abs(q.astype(np.float32) * scale - w).max(axis=0)
    check("export int8: each column uses the full range (max |q| = 127) and is within half a step of fp32",
          (np.abs(q).max(axis=0) == 127).all() and (err <= scale * 0.5001).all(),
          f"worst error {float((err / scale).max()):.3f} steps")
    size, fp32_size = model.ByteSize(), os.path.getsize(fp32_file)
    check("export int8: image_projection.onnx is about a quarter of the fp32 one", size < 0.3 * fp32_size,
          f"{size} vs {fp32_size} bytes")


def test_quantize_check(run: str) -> None:
    from training import quantize_check

    code, log = run_quiet(quantize_check.main, ["--run", run, "--json"])
    check("quantize_check: runs the three exports", code == 0, log.strip().splitlines()[-1] if code else "")
    report = json.loads(log)
    rows = {r["weights"]: r for r in report["precisions"]}
    check("quantize_check: fp32, fp16 and int8, in that order", list(rows) == ["fp32", "fp16", "int8"])
    check("quantize_check: the fp32 export's val rsum is the one training recorded",
          abs(rows["fp32"]["rsum"] - report["checkpointValRsum"]) <= 0.05,
          f"{rows['fp32']['rsum']:.2f} vs {report['checkpointValRsum']:.2f}")
    int8 = rows["int8"]
    check("quantize_check: int8 moves cosines, by little",
          0 < int8["maxImageCaptionCosDiff"] < 0.05 and int8["minImageCosToFp32"] > 0.99,
          f"max |dcos| {int8['maxImageCaptionCosDiff']:.2e}, rsum {int8['rsum']:.2f} vs fp32 {rows['fp32']['rsum']:.2f}")


def numpy_type(t: int) -> str:
    return {1: "float32", 10: "float16"}[t]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.tests.tiny", description="Tiny end-to-end training check.")
    p.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder, removed)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    work = a.keep or tempfile.mkdtemp(prefix="sagasu-tiny-")
    if a.keep:
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
    t0 = time.perf_counter()
    try:
        root = os.path.join(work, "data")
        make(root, images=400, seed=0)
        print(f"tiny: synthetic dataset in {root}")
        test_protocol()
        test_loss()
        test_data(root)
        test_padding(root)
        run = test_training(root, work)
        test_export(run, work)
        test_quantize_check(run)
    except AssertionError as e:
        print(f"tiny: {e}", file=sys.stderr)
        return 1
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"tiny: all {len(PASSED)} checks passed in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
