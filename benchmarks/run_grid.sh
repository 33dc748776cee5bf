#!/usr/bin/env bash
# Every cell of the grid (3 domains x 3 modes x 2 formats) through generate -> train -> evaluate on the embedded
# default, at a reduced evaluation size; one line per cell with exit codes, kept examples, PGR and wall time.
# Usage: bash benchmarks/run_grid.sh   (AGORA_STORE=... to choose the store; logs of the last cell in $WORK)
#        DOMAINS=code FORMATS=json bash benchmarks/run_grid.sh   (a part of the grid; MODES=... likewise)
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${WORK:-/tmp/grid}"
export AGORA_STORE="${AGORA_STORE:-$WORK/store}" WANDB_MODE=offline HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
mkdir -p "$WORK" && cd "$WORK" || exit 1
for d in ${DOMAINS:-math code instruction_following}; do
  for m in ${MODES:-instance_generation response_generation quality_enhancement}; do
  for f in ${FORMATS:-free_form json}; do
    O="domain=$d mode=$m prompt_format=$f budget.n=3 budget.max_attempts_factor=3 budget.eval_limit=6"
    O="$O eval.max_new_tokens=96 tracking=none"
    t0=$(date +%s)
    python "$ROOT/generate.py" $O > g.log 2>&1; g=$?
    python "$ROOT/train.py" $O > t.log 2>&1; t=$?
    python "$ROOT/evaluate.py" $O > e.log 2>&1; e=$?
    kept=$(grep -o "kept [0-9]*/[0-9]*" g.log | tail -1)
    pgr=$(grep "^PGR" e.log | tail -1)
    echo "$d $m $f: gen=$g train=$t eval=$e $kept | $pgr | $(( $(date +%s) - t0 )) s"
    [ $t -ne 0 ] && tail -1 t.log | sed 's/^/    train: /'
  done
done; done
