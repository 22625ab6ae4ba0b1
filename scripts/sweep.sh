#!/usr/bin/env bash
# Grid search: train every combination of the given values, then print a table.
#
#   scripts/sweep.sh CONFIG 'optim.learning_rate=1e-3,5e-3' 'model.reg=1e-4,1e-3' [-j N] [--out DIR]
#                    [--command train|random-search] [-- EXTRA...]
#
# Each combination runs `csnets COMMAND --config CONFIG --set k=v ... --out DIR/run-NNN`
# (N at a time) with its log in DIR/run-NNN/log. A run that fails is reported in the
# table and the sweep goes on. The table comes from `csnets summarize DIR`, best
# validation accuracy first, followed by the command line of the best run.
# Arguments after `--` are passed to every `csnets train` (e.g. --data-dir D).
# CSNETS overrides the command (default: csnets).
set -euo pipefail

usage() { echo "usage: $0 CONFIG 'section.key=v1,v2' ... [-j N] [--out DIR] [--command train|random-search] [-- EXTRA_ARGS...]" >&2; exit 2; }

[[ $# -ge 1 ]] || usage
config=$1; shift
[[ -f $config ]] || { echo "error: no config file $config" >&2; exit 2; }
jobs=1
out=""
command=train
grids=()
extra=()
while [[ $# -gt 0 ]]; do
  case $1 in
    -j) [[ $# -ge 2 ]] || usage; jobs=$2; shift 2 ;;
    -j*) jobs=${1#-j}; shift ;;
    --out) [[ $# -ge 2 ]] || usage; out=$2; shift 2 ;;
    --command) [[ $# -ge 2 ]] || usage; command=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *=*) grids+=("$1"); shift ;;
    *) echo "error: expected section.key=v1,v2,... got '$1'" >&2; usage ;;
  esac
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "error: -j takes a positive whole number, got '$jobs'" >&2; exit 2; }
[[ $command == train || $command == random-search ]] || { echo "error: --command is train or random-search, got '$command'" >&2; exit 2; }
[[ ${#grids[@]} -ge 1 ]] || { echo "error: give at least one section.key=v1,v2 grid" >&2; exit 2; }
read -r -a csnets <<< "${CSNETS:-csnets}"
name=$(basename "${config%.*}")
out=${out:-sweeps/$name-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

# Cartesian product: each combination is one line of tab-separated key=value words.
combos=("")
for grid in "${grids[@]}"; do
  key=${grid%%=*}
  IFS=',' read -r -a values <<< "${grid#*=}"
  next=()
  for combo in "${combos[@]}"; do
    for value in "${values[@]}"; do
      next+=("${combo:+$combo$'\t'}$key=$value")
    done
  done
  combos=("${next[@]}")
done

# Parallel runs share the cores: one BLAS thread each unless the caller chose.
if (( jobs > 1 )); then
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
fi

run_one() {
  local dir=$1 combo=$2 sets=() status=0
  local -a pairs
  IFS=$'\t' read -r -a pairs <<< "$combo"
  printf '%s\n' "${pairs[@]}" > "$dir/sweep_args"
  for pair in "${pairs[@]}"; do sets+=(--set "$pair"); done
  "${csnets[@]}" "$command" --config "$config" "${sets[@]}" --out "$dir" --quiet ${extra[@]+"${extra[@]}"} \
    > "$dir/log" 2>&1 || status=$?
  echo "$status" > "$dir/exit_status"
  # Only the status here: the test accuracy stays out of sight while choosing on validation.
  if (( status == 0 )); then
    echo "$(basename "$dir"): ${pairs[*]} -> done"
  else
    echo "$(basename "$dir"): ${pairs[*]} -> FAILED (exit $status): $(tail -n 1 "$dir/log")"
  fi
}

echo "sweep of ${#combos[@]} runs into $out ($jobs at a time)"
i=0
for combo in "${combos[@]}"; do
  i=$((i + 1))
  dir=$(printf '%s/run-%03d' "$out" "$i")
  mkdir -p "$dir"
  while (( $(jobs -rp | wc -l) >= jobs )); do wait -n || true; done
  run_one "$dir" "$combo" &
done
wait
echo
"${csnets[@]}" summarize "$out"
