#!/usr/bin/env bash
# Trains and evaluates every row of the PTB table, then regenerates results/ptb.md.
#   launch/ptb_table.sh [ROW ...]          # default: every row of configs/ptb_lstm.py
# Environment:
#   TABLE=lstm|gru     which table (configs/ptb_lstm.py or configs/ptb.py; default lstm)
#   PARALLEL=N         rows trained at once on this host (default: 1 per GPU, else
#                      1 per core of CORES, each row pinned to its own core with taskset)
#   CORES="0 1"        the CPU cores rows are pinned to (default: every core); a row
#                      starts on a core whose row has ended. CORES=1 adds a row beside
#                      one that another invocation trains on core 0.
#   DATA=DIR           the PTB folder (default ../shared/data/ptb; '' downloads it)
#   RUNS=DIR           the workdirs (default runs/ptb_lstm or runs/ptb)
#   HARDWARE="..."     the hardware each collected row records (default: what the
#                      row's training processes recorded in W/hardware.jsonl)
#   DRY_RUN=1          print each row's command and stop
#   JAX_COMPILATION_CACHE_DIR   compiled steps kept for restarts (default RUNS/jax_cache)
#   SLURM=1            submit one sbatch job per row instead (one GPU each; extra
#                      sbatch flags in SBATCH_FLAGS), then run this script again
#                      without SLURM=1 once they have finished, to build the table.
# Rerunning is free: each row resumes from its checkpoint (exact resume), a row that
# reached its stopping rule trains nothing more, and a row already evaluated on
# test is not evaluated again.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
python="${TEXTVAE_PYTHON:-$repo/.venv/bin/python}"
table="${TABLE:-lstm}"
case "$table" in
  lstm) config=configs/ptb_lstm.py; runs="${RUNS:-runs/ptb_lstm}" ;;
  gru) config=configs/ptb.py; runs="${RUNS:-runs/ptb}" ;;
  *) echo "launch/ptb_table.sh: TABLE=$table: expected lstm or gru" >&2; exit 2 ;;
esac
data="${DATA-../shared/data/ptb}"
from_config() {  # prints the Python expression $1 over the config module `m`
  "$python" -c "import importlib; m = importlib.import_module('${config%.py}'.replace('/', '.')); print($1)"
}
if [ "$#" -gt 0 ]; then
  rows=("$@")
else
  read -r -a rows <<< "$(from_config "' '.join(getattr(m, 'TABLE_ROWS', None) or [v for v in m.VARIANTS if v != 'svae'])")"
fi
prerequisite() {  # the run a row starts from (configs/ptb_lstm.py PREREQUISITES), or ''
  from_config "getattr(m, 'PREREQUISITES', {}).get('$1', '')"
}
mkdir -p "$runs"
# A row that restarts (next session, preemption) loads its compiled steps from
# JAX's persistent cache instead of compiling every batch shape again (82 for
# PTB, minutes on a CPU core); the executables, and so the numbers, are the same.
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$runs/jax_cache}"

row_command() {  # the documented command of one row (configs/ptb_lstm.py docstring)
  local row="$1" w="$runs/$1" pre
  local src=() from=()
  [ -n "$data" ] && src=("--config.data.source_dir=$data")
  pre="$(prerequisite "$row")"
  if [ -n "$pre" ]; then  # trained to its stopping rule first (a finished one: nothing to do)
    printf '%q ' "$python" -m textvae.main "--config=$config:$pre" "${src[@]}" "--workdir=$runs/$pre"
    printf '&& '
    from=("--config.train.init_from.workdir=$runs/$pre")
  fi
  printf '%q ' "$python" -m textvae.main "--config=$config:$row" "${src[@]}" "${from[@]}" "--workdir=$w"
  printf '&& { [ -f %q ] || ' "$w/eval_test.json"
  printf '%q ' "$python" -m textvae.evaluate "--workdir=$w" --split=test --num_importance_samples=500
  printf '; } && '
  printf '%q ' "$python" tools/make_ptb_table.py "--table=$table" --collect "$row=$w"
  if [ -n "${HARDWARE:-}" ]; then printf '%q ' "--hardware=$HARDWARE"; fi
}

if [ "${DRY_RUN:-0}" = 1 ]; then
  for row in "${rows[@]}"; do row_command "$row"; echo; done
  exit 0
fi

if [ "${SLURM:-0}" = 1 ]; then
  for row in "${rows[@]}"; do
    # shellcheck disable=SC2086
    sbatch --job-name="ptb-$table-$row" --output="$runs/$row.slurm-%j.out" --gpus=1 \
        ${SBATCH_FLAGS:-} --wrap="cd $(printf '%q' "$repo") && $(row_command "$row")"
  done
  exit 0
fi

gpus="$("$python" -c 'import jax; print(sum(d.platform != "cpu" for d in jax.devices()))')"
read -r -a cores <<< "${CORES:-$(seq -s ' ' 0 $(( $(nproc) - 1 )))}"
read -r -a cores <<< "${cores[*]//,/ }"
if [ -z "${PARALLEL:-}" ]; then
  if [ "$gpus" -gt 0 ]; then PARALLEL="$gpus"; else PARALLEL="${#cores[@]}"; fi
fi
pids=()
holder=()  # slot -> the pid of the row on it (a slot is a core, or a GPU)
free_slot() {  # prints a slot that no running row holds, or nothing
  local running s
  running=" $(jobs -rp | tr '\n' ' ') "
  for (( s = 0; s < PARALLEL; s++ )); do
    if [ -z "${holder[s]:-}" ] || [[ "$running" != *" ${holder[s]} "* ]]; then
      echo "$s"; return
    fi
  done
}
for row in "${rows[@]}"; do
  while slot="$(free_slot)"; [ -z "$slot" ]; do sleep 2; done
  pin=()
  if command -v taskset > /dev/null && [ "$gpus" = 0 ]; then
    pin=(taskset -c "${cores[slot % ${#cores[@]}]}")
  else
    export CUDA_VISIBLE_DEVICES="$slot"
  fi
  echo "launch/ptb_table.sh: row $row -> $runs/$row.log" >&2
  "${pin[@]}" bash -c "$(row_command "$row")" >> "$runs/$row.log" 2>&1 &
  pids+=("$!")
  holder[slot]="$!"
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
"$python" tools/make_ptb_table.py
exit "$status"
