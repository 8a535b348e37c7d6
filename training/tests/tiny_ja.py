"""End-to-end self-test of the Japanese path on synthetic data (seconds, no real data needed):

    training/.venv/bin/python -m training.tests.tiny_ja

An English model is trained for one epoch and exported in float16 (the "shipped" image side); a captions-only
folder in the format of `data:prepare --lang ja` (its own vocabulary: every word renamed and renumbered) is
written beside the synthetic data set; then training.train_ja learns against the frozen projection, is
interrupted and resumed (bit-identical to an uninterrupted run), refuses other arguments, and
training.export_ja writes a text-only model whose manifest names the image model by its manifest sha256 and
whose ONNX file matches PyTorch in onnxruntime.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import onnx
import torch

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from training import export as export_mod  # noqa: E402
from training import export_ja as export_ja_mod  # noqa: E402
from training import train as train_mod  # noqa: E402
from training import train_ja as train_ja_mod  # noqa: E402
from training.data import sha256_file  # noqa: E402
from training.tests.make_synthetic import make  # noqa: E402
from training.tests.tiny import PASSED, check, run_quiet, same_state  # noqa: E402


def write_japanese(root: str, out: str, seed: int = 1) -> None:
    """The synthetic captions under another vocabulary: same sentences, every word renamed and renumbered."""
    os.makedirs(out, exist_ok=True)
    vocab = open(os.path.join(root, "vocab.txt"), encoding="utf-8").read().split("\n")[:-1]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(vocab) - 2) + 2  # new id k+2 holds old word order[k]
    new_id = np.zeros(len(vocab), dtype=np.int32)
    new_id[order] = np.arange(2, len(vocab))
    ja_vocab = ["<pad>", "<unk>"] + [f"語{vocab[o]}" for o in order]
    tokens = np.fromfile(os.path.join(root, "tokens.i32"), dtype="<i4")
    ja_tokens = np.where(tokens >= 2, new_id[tokens], tokens).astype("<i4")
    offsets = np.fromfile(os.path.join(root, "offsets.i32"), dtype="<i4")
    with open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(w + "\n" for w in ja_vocab))
    ja_tokens.tofile(os.path.join(out, "tokens.i32"))
    shutil.copyfile(os.path.join(root, "offsets.i32"), os.path.join(out, "offsets.i32"))
    shutil.copyfile(os.path.join(root, "caption_image.i32"), os.path.join(out, "caption_image.i32"))
    rows = open(os.path.join(root, "captions.tsv"), encoding="utf-8").read().split("\n")[1:-1]
    with open(os.path.join(out, "captions.tsv"), "w", encoding="utf-8") as f:
        f.write("index\timage_index\tn\tcaption\n")
        for c, r in enumerate(rows):
            i, img, n, _ = r.split("\t")
            words = " ".join(ja_vocab[t] for t in ja_tokens[offsets[c] : offsets[c + 1]])
            f.write(f"{i}\t{img}\t{n}\t{words}\n")
    files = ("vocab.txt", "captions.tsv", "tokens.i32", "offsets.i32", "caption_image.i32")
    meta = {
        "format": train_ja_mod.CAPTIONS_FORMAT,
        "language": "ja",
        "images": {"dir": os.path.abspath(root), "format": "sagasu-flickr8k/1",
                   "metaSha256": sha256_file(os.path.join(root, "meta.json"))},
        "captions": len(rows),
        "vocab": {"size": len(ja_vocab), "minCount": 1, "from": "synthetic", "padId": 0, "unkId": 1},
        "tokenizer": "synthetic-ja",
        "files": {n: {"bytes": os.path.getsize(os.path.join(out, n)), "sha256": sha256_file(os.path.join(out, n))}
                  for n in files},
    }
    with open(os.path.join(out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
    sentences = [{"text": " ".join(ja_vocab[i] for i in ids), "ids": ids}
                 for ids in ([5, 9, 12], [3, 4, 6, 7, 8, 10, 11], [2, 20], [14, 15, 16, 17], [30, 31, 32, 33, 34, 35])]
    with open(os.path.join(out, "fixture_sentences.json"), "w", encoding="utf-8") as f:
        json.dump(sentences, f, ensure_ascii=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.tests.tiny_ja", description=__doc__.split("\n")[0])
    p.add_argument("--keep", help="work in this folder and keep it")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    work = a.keep or tempfile.mkdtemp(prefix="sagasu-tiny-ja-")
    if a.keep:
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
    t0 = time.perf_counter()
    try:
        root, ja = os.path.join(work, "data"), os.path.join(work, "data-ja")
        make(root, images=400, seed=0)
        en_run, en_model = os.path.join(work, "en-run"), os.path.join(work, "models", "fne")
        code, log = run_quiet(train_mod.main, ["--data", root, "--dim", "64", "--batch", "32", "--max-captions", "320",
                                               "--epochs", "3", "--threads", "1", "--out", en_run])
        check("English image side: trained", code == 0, log.strip().splitlines()[-1][:80])
        code, log = run_quiet(export_mod.main, ["--run", en_run, "--out", en_model, "--weights", "fp16", "--name", "fne"])
        check("English image side: exported in float16", code == 0)
        write_japanese(root, ja)

        common = ["--data", ja, "--image-model", en_model, "--batch", "32", "--max-captions", "320", "--threads", "1",
                  "--seed", "3"]
        run_a, run_b = os.path.join(work, "ja-a"), os.path.join(work, "ja-b")
        code, log = run_quiet(train_ja_mod.main, common + ["--epochs", "3", "--out", run_a, "--check-run", en_run])
        check("train_ja: a 3-epoch run finishes", code == 0, log.strip().splitlines()[-1][:100])
        check("train_ja: the shipped projection is the English run's, rounded to float16",
              "shipped projection = " in log)
        history = [json.loads(l) for l in open(os.path.join(run_a, "log.jsonl"))]
        check("train_ja: loss falls", history[-1]["loss"] < history[0]["loss"],
              " -> ".join(f"{h['loss']:.2f}" for h in history))
        # Chance: R@1/5/10 of 80 images x ~400 captions is about 1 + 6 + 12 per direction, rsum ~40.
        rsums = [h["val"]["rsum"] for h in history]
        check("train_ja: validation rsum rises, above chance", rsums[-1] > rsums[0] and rsums[-1] > 50,
              " -> ".join(f"{r:.1f}" for r in rsums))
        best = torch.load(os.path.join(run_a, "best.pt"), weights_only=True)
        check("train_ja: only the text encoder is trained (no image weights in the checkpoint)",
              all(not k.startswith("image") for k in best["model"]) and "gru.weight_hh_l0" in best["model"])

        code, _ = run_quiet(train_ja_mod.main, common + ["--epochs", "1", "--out", run_b])
        code2, log = run_quiet(train_ja_mod.main, common + ["--epochs", "3", "--out", run_b])
        check("train_ja: resumes after epoch 1", code == 0 and code2 == 0 and "after epoch 1" in log)
        la = torch.load(os.path.join(run_a, "last.pt"), weights_only=True)
        lb = torch.load(os.path.join(run_b, "last.pt"), weights_only=True)
        check("train_ja: resumed weights bit-identical to an uninterrupted run", same_state(la["model"], lb["model"]))
        strip = lambda hs: [{k: v for k, v in h.items() if "seconds" not in k} for h in hs]  # noqa: E731
        check("train_ja: same losses and metrics every epoch", strip(la["history"]) == strip(lb["history"]))
        code, log = run_quiet(train_ja_mod.main, common + ["--epochs", "3", "--lr", "1e-3", "--out", run_a])
        check("train_ja: other arguments are refused", code == 2 and "other arguments" in log)
        code, log = run_quiet(train_ja_mod.main, common + ["--epochs", "1", "--out", os.path.join(work, "ja-c"),
                                                           "--check-run", os.path.join(work, "nowhere")])
        check("train_ja: a missing --check-run is an error", code != 0)
        code, log = run_quiet(train_ja_mod.main, common + ["--epochs", "1", "--init-gru", en_run,
                                                           "--out", os.path.join(work, "ja-init")])
        check("train_ja: a run started from the English GRU (--init-gru) trains", code == 0)

        out = os.path.join(work, "models", "fne-ja")
        code, log = run_quiet(export_ja_mod.main, ["--run", run_a, "--out", out, "--name", "fne-ja"])
        check("export_ja: runs (onnxruntime parity inside)", code == 0, log.strip().splitlines()[-1][:100] if log.strip() else "")
        manifest = json.load(open(os.path.join(out, "manifest.json"), encoding="utf-8"))
        en_sha = hashlib.sha256(open(os.path.join(en_model, "manifest.json"), "rb").read()).hexdigest()
        check("export_ja: manifest names the image model by its manifest sha256",
              manifest["imageModel"] == {"name": "fne", "manifestSha256": en_sha} and manifest["language"] == "ja")
        check("export_ja: manifest carries tokenizer, dim and vocabulary size",
              manifest["tokenizerVersion"] == "synthetic-ja" and manifest["dim"] == 64
              and manifest["vocabSize"] == len(open(os.path.join(ja, "vocab.txt"), encoding="utf-8").read().split("\n")) - 1)
        check("export_ja: text encoder only", sorted(manifest["files"]) == ["fixtures.json", "text_encoder.onnx", "vocab.txt"])
        for name, info in manifest["files"].items():
            check(f"export_ja: sha256 of {name}", sha256_file(os.path.join(out, name)) == info["sha256"])
        model = onnx.load(os.path.join(out, "text_encoder.onnx"))
        onnx.checker.check_model(model, full_check=True)
        kinds = {t.data_type for t in model.graph.initializer if t.data_type in (1, 10) and t.name != "norm_eps"}
        check("export_ja: opset 17, float16 weights", model.opset_import[0].version == 17 and kinds == {10})
        fixtures = json.load(open(os.path.join(out, "fixtures.json"), encoding="utf-8"))
        check("export_ja: fixtures hold the fixture sentences, 4 lengths in the batch",
              fixtures["text"]["single"]["captions"][0].startswith("語")
              and len(set(fixtures["text"]["batch"]["lengths"])) == 4)
    except AssertionError as e:
        print(f"tiny_ja: {e}", file=sys.stderr)
        return 1
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"tiny_ja: all {len(PASSED)} checks passed in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
