#!/usr/bin/env bash
# The run matrix behind docs/RESULTS.md: two streams of one thread each (on 2 cores this beats one stream
# of two threads). Every run resumes from its last checkpoint and a finished run is skipped, so rerunning
# this after an interruption continues where it stopped.
#   training/run_matrix.sh [a|b|all] [runs dir]
# Within a pair (FNE vs one-layer) everything but --features is identical: the paper's comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
stream=${1:-all}
runs=${2:-.cache/runs}
data=.cache/data/flickr8k
py=training/.venv/bin/python
mkdir -p "$runs"

run() { # name features loss epochs [more train.py arguments]
  local name=$1 features=$2 loss=$3 epochs=$4
  shift 4
  "$py" -m training.train --data "$data" --features "$features" --loss "$loss" --dim 512 --epochs "$epochs" \
    --threads 1 --seed 0 --out "$runs/$name" "$@" >>"$runs/$name.out" 2>&1
}

stream_a() {
  run fne-sh fne sh 20
  run fne-sh-drop fne sh 20 --feature-dropout 0.5
  run fne-mh fne mh 12
}
stream_b() {
  run one-layer-sh one-layer sh 20
  run one-layer-sh-drop one-layer sh 20 --feature-dropout 0.5
  run one-layer-mh one-layer mh 12
  run fne-blocks-sh fne-blocks sh 12
  run fne-last-sh fne-last sh 12
}

case "$stream" in
  a) stream_a ;;
  b) stream_b ;;
  all)
    stream_a &
    stream_b &
    wait
    ;;
  *) echo "usage: training/run_matrix.sh [a|b|all] [runs dir]" >&2; exit 2 ;;
esac
