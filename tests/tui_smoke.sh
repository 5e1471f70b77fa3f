#!/usr/bin/env bash
# Real-terminal smoke test of the dashboard: `pfgmctl train --tui` in tmux, checked by capture-pane.
# Usage: tests/tui_smoke.sh   (needs tmux and pfgmctl on PATH; ~1-3 min on a CPU)
# Passes when the loss and the z/σ trajectory progress both show up, then quits with 's' (stop).
set -euo pipefail

SESSION="pfgmctl-smoke-$$"
WORK="$(mktemp -d)"
TIMEOUT="${SMOKE_TIMEOUT:-300}"
SETS=(--set data.n=2048 --set train.batch_size=256 --set train.kimg=40 --set train.tick_kimg=1
      --set train.ckpt_ticks=2 --set train.preview_n=256 --set sample.steps=12
      --set train.warmup_kimg=1 --set train.device=cpu)
cleanup() { tmux kill-session -t "$SESSION" 2>/dev/null || true; }
trap cleanup EXIT

command -v tmux >/dev/null || { echo "tmux is not installed (apt-get install tmux)"; exit 2; }
tmux new-session -d -s "$SESSION" -x 160 -y 48 \
  "cd '$WORK' && PFGMCTL_IMAGE_PROTOCOL=halfcell pfgmctl train --outdir runs --tui ${SETS[*]}; echo SMOKE-EXIT \$?; sleep 600"

screen() { tmux capture-pane -t "$SESSION" -p; }
seen_loss=0 seen_traj=0
for ((t = 0; t < TIMEOUT; t++)); do
  text="$(screen)"
  grep -Eq 'loss [0-9]+\.[0-9]{4}' <<<"$text" && seen_loss=1
  grep -Eq '(σ|z) = [0-9.e+-]+.*step [0-9]+/[0-9?]+ · NFE [0-9]+' <<<"$text" && seen_traj=1
  if ((seen_loss && seen_traj)); then break; fi
  sleep 1
done
screen >"$WORK/screen.txt"
cat "$WORK/screen.txt"
if ! ((seen_loss && seen_traj)); then
  echo "FAIL: loss seen=$seen_loss, trajectory seen=$seen_traj after ${t}s"
  exit 1
fi
echo "OK: loss and sampling trajectory visible after ${t}s"

tmux send-keys -t "$SESSION" q
sleep 1
if screen | grep -q "Stop training"; then
  echo "quit asked: stop or leave training -> pressing s"
  tmux send-keys -t "$SESSION" s
fi
for ((t = 0; t < 90; t++)); do
  if screen | grep -q "SMOKE-EXIT"; then break; fi
  sleep 1
done
screen | grep -E "training (stopped|finished)|SMOKE-EXIT" || { echo "FAIL: no exit line"; exit 1; }
echo "run dir: $(ls -d "$WORK"/runs/*)"
