#!/usr/bin/env bash
# The run matrix behind docs/RESULTS.md, as two streams of one thread each (on 2 cores this beats one
# stream of two threads). Every run resumes from its last checkpoint, so rerunning this after an
# interruption continues where it stopped. Usage: training/run_matrix.sh [runs dir]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-.cache/runs}
data=.cache/data/flickr8k
py=training/.venv/bin/python
dim=512
mkdir -p "$runs"

run() { # name features loss epochs
  "$py" -m training.train --data "$data" --features "$2" --loss "$3" --dim "$dim" --epochs "$4" \
    --threads 1 --seed 0 --out "$runs/$1" >>"$runs/$1.out" 2>&1
}

(
  run fne-sh fne sh 20
  run fne-mh fne mh 15
  run fne-blocks-sh fne-blocks sh 12
) &
(
  run one-layer-sh one-layer sh 20
  run one-layer-mh one-layer mh 15
  run fne-last-sh fne-last sh 12
) &
wait
