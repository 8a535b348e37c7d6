#!/usr/bin/env bash
# Creates training/.venv (Python 3.11) with the pinned packages of training/requirements.txt.
# Idempotent: silent when the environment matches the requirements (a stamp file holds the sha256 of the
# requirements and the interpreter version); recreated from scratch when they change or the venv is broken.
# Offline-friendly: pip uses whatever index / find-links the machine configures, and gives up at once
# (--retries 0 --timeout 5) instead of hanging when a package cannot be found.
# SAGASU_PYTHON overrides the interpreter (it must be Python 3.11).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/training/.venv"
req="$root/training/requirements.txt"
stamp="$venv/.sagasu-requirements.sha256"
say() { echo "setup-training: $*"; }
die() { echo "setup-training: error: $*" >&2; exit 1; }

[ -f "$req" ] || die "missing $req"

# 1. A Python 3.11 interpreter.
python=""
for candidate in ${SAGASU_PYTHON:-} python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
    "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
    python="$(command -v "$candidate")"
    break
  fi
done
[ -n "$python" ] || die "Python 3.11 was not found (tried ${SAGASU_PYTHON:+$SAGASU_PYTHON, }python3.11, python3); install it or set SAGASU_PYTHON"

want="$( (sha256sum "$req" | cut -d' ' -f1; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)"

# 2. Up to date? Then say nothing.
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
  "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  exit 0
fi

# 3. (Re)create the environment from scratch, so no package from an older requirements file lingers.
if [ -e "$venv" ]; then
  say "requirements changed or environment incomplete: recreating training/.venv"
  rm -rf -- "$venv"
else
  say "creating training/.venv with $python"
fi
"$python" -m venv "$venv" || die "could not create a virtual environment at $venv (is the venv module installed?)"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
say "installing training/requirements.txt (torch CPU, numpy, onnx, onnxruntime)"
if ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --retries 0 --timeout 5 \
  -r "$req" >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  rm -rf -- "$venv"
  die "pip could not install training/requirements.txt (last lines above). Offline machines need a package mirror or find-links holding these exact versions (see pip config list)."
fi

if ! "$venv/bin/python" -c 'import torch, numpy, onnx, onnxruntime' >"$log" 2>&1; then
  cat "$log" >&2
  rm -rf -- "$venv"
  die "the installed packages do not import (see above)"
fi

echo "$want" >"$stamp"
say "ready: $("$venv/bin/python" -c 'import torch, numpy, onnx, onnxruntime as o; print(f"torch {torch.__version__}, numpy {numpy.__version__}, onnx {onnx.__version__}, onnxruntime {o.__version__}")')"
