#!/usr/bin/env bash
# Grid search: train every combination of the given values, then print a table.
#
#   scripts/sweep.sh CONFIG 'optim.learning_rate=1e-3,5e-3' 'model.reg=1e-4,1e-3' [-j N] [--out DIR]
#                    [--resume] [--command train|random-search] [-- EXTRA...]
#
# Each combination runs `csnets COMMAND --config CONFIG --set k=v ... --out DIR/run-NNN`
# (N at a time) with its log in DIR/run-NNN/log. Values are split on commas outside
# brackets, so lists sweep too: 'model.hidden_dims=[16,8],[32]' is two values.
# A run that fails is reported in the table and the sweep goes on; the exit status is
# 1 if any run failed (after the table), 2 for a usage error.
# DIR must be new or empty; --resume continues the sweep in DIR (same config, grids,
# command and extra arguments): finished runs are kept, failed or unfinished ones move
# to DIR/superseded/ and run again in new folders.
# The table comes from `csnets summarize DIR`, best validation accuracy first.
# Arguments after `--` are passed to every run (e.g. --data-dir D).
# CSNETS overrides the command (default: csnets).
set -euo pipefail

usage() { echo "usage: $0 CONFIG 'section.key=v1,v2' ... [-j N] [--out DIR] [--resume] [--command train|random-search] [-- EXTRA_ARGS...]" >&2; exit 2; }

[[ $# -ge 1 ]] || usage
config=$1; shift
[[ -f $config ]] || { echo "error: no config file $config" >&2; exit 2; }
jobs=1
out=""
command=train
resume=0
grids=()
extra=()
while [[ $# -gt 0 ]]; do
  case $1 in
    -j) [[ $# -ge 2 ]] || usage; jobs=$2; shift 2 ;;
    -j*) jobs=${1#-j}; shift ;;
    --out) [[ $# -ge 2 ]] || usage; out=$2; shift 2 ;;
    --resume) resume=1; shift ;;
    --command) [[ $# -ge 2 ]] || usage; command=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
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

# split_values TEXT: the comma-separated values of TEXT into the array `values`; commas
# inside [...] or {...} belong to the value (a YAML list or mapping).
split_values() {
  local text=$1 depth=0 current="" ch i
  values=()
  for ((i = 0; i < ${#text}; i++)); do
    ch=${text:i:1}
    case $ch in
      '['|'{') depth=$((depth + 1)) ;;
      ']'|'}') depth=$((depth - 1)); ((depth >= 0)) || return 1 ;;
      ',') if ((depth == 0)); then values+=("$current"); current=""; continue; fi ;;
    esac
    current+=$ch
  done
  ((depth == 0)) || return 1
  values+=("$current")
}

# Cartesian product: each combination is one line of tab-separated key=value words.
combos=("")
for grid in "${grids[@]}"; do
  key=${grid%%=*}
  split_values "${grid#*=}" || { echo "error: unbalanced brackets in '$grid'" >&2; exit 2; }
  next=()
  for value in "${values[@]}"; do
    [[ -n $value ]] || { echo "error: an empty value in '$grid'" >&2; exit 2; }
  done
  for combo in "${combos[@]}"; do
    for value in "${values[@]}"; do
      next+=("${combo:+$combo$'\t'}$key=$value")
    done
  done
  combos=("${next[@]}")
done

# What this sweep is; --resume continues only the same sweep, so no folder mixes two grids.
config_abs=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
spec=$(printf 'config %s\ncommand %s\n' "$config_abs" "$command"
       printf 'grid %s\n' "${grids[@]}"
       printf 'extra'; printf ' %q' ${extra[@]+"${extra[@]}"}; printf '\n')
host=${HOSTNAME:-$(hostname)}

if [[ -d $out && -n $(ls -A "$out") ]]; then
  if (( ! resume )); then
    echo "error: $out already holds a sweep: use --resume to continue it, or another --out" >&2; exit 2
  fi
  [[ -f $out/sweep_spec ]] || { echo "error: $out has no sweep_spec (not a folder of this script): choose another --out" >&2; exit 2; }
  if [[ $(cat "$out/sweep_spec") != "$spec" ]]; then
    echo "error: $out was a sweep of another config, grid, command or extra arguments (see $out/sweep_spec); --resume needs the same" >&2; exit 2
  fi
  if [[ -f $out/sweep.pid ]]; then
    read -r other_pid other_host < "$out/sweep.pid" || true
    if [[ $other_host == "$host" && $other_pid != "$$" ]] && kill -0 "$other_pid" 2>/dev/null; then
      echo "error: another sweep (pid $other_pid) is still running into $out" >&2; exit 2
    fi
  fi
elif (( resume )); then
  echo "error: --resume: $out holds no sweep to continue" >&2; exit 2
fi
mkdir -p "$out"
printf '%s\n' "$spec" > "$out/sweep_spec"
echo "$$ $host" > "$out/sweep.pid"

# --resume: keep finished runs (exit 0, or diverged: another try diverges the same way),
# move the others aside, and queue every combination that has no finished run.
declare -A done_combos=()
last=0
for dir in "$out"/run-* "$out"/superseded/run-*; do
  [[ -d $dir ]] || continue
  number=${dir##*/run-}; number=${number%%.*}
  [[ $number =~ ^[0-9]+$ ]] && (( 10#$number > last )) && last=$((10#$number))
done
kept=()
for dir in "$out"/run-*; do
  [[ -d $dir ]] || continue
  status=$(cat "$dir/exit_status" 2>/dev/null || echo none)
  combo=$(paste -sd $'\t' "$dir/sweep_args" 2>/dev/null || true)
  if [[ -n $combo && -z ${done_combos[$combo]+x} ]] && { [[ $status == 0 ]] ||
       { [[ $status == 1 ]] && grep -q '"status": *"diverged"' "$dir/summary.json" 2>/dev/null; }; }; then
    done_combos[$combo]=1
    kept+=("$dir")
  else
    mkdir -p "$out/superseded"
    mv "$dir" "$out/superseded/$(basename "$dir").$(date +%Y%m%d-%H%M%S).$$"
  fi
done
todo=()
for combo in "${combos[@]}"; do
  [[ -n ${done_combos[$combo]+x} ]] || todo+=("$combo")
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

if (( ${#kept[@]} )); then
  echo "sweep of ${#combos[@]} runs into $out: ${#kept[@]} finished before, ${#todo[@]} to run ($jobs at a time)"
else
  echo "sweep of ${#combos[@]} runs into $out ($jobs at a time)"
fi
i=$last
started=()
for combo in ${todo[@]+"${todo[@]}"}; do
  i=$((i + 1))
  dir=$(printf '%s/run-%03d' "$out" "$i")
  mkdir "$dir"
  started+=("$dir")
  while (( $(jobs -rp | wc -l) >= jobs )); do wait -n || true; done
  run_one "$dir" "$combo" &
done
wait
echo
"${csnets[@]}" summarize "$out"

failed=0
for dir in ${kept[@]+"${kept[@]}"} ${started[@]+"${started[@]}"}; do
  [[ $(cat "$dir/exit_status" 2>/dev/null || echo none) == 0 ]] || failed=$((failed + 1))
done
if (( failed )); then
  echo "$failed of ${#combos[@]} runs failed" >&2
  exit 1
fi
