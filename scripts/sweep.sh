#!/usr/bin/env bash
# Grid search: train every combination of the given values, then print a table.
#
#   scripts/sweep.sh CONFIG 'optim.learning_rate=1e-3,5e-3' 'model.reg=1e-4,1e-3' [-j N] [--out DIR]
#                    [--resume] [--command train|random-search] [-- EXTRA...]
#
# A thin wrapper over `csnets sweep --config CONFIG --grid ... --backend local` (no Ray
# needed): each combination is a trial, run N at a time into DIR/trial-NNN, its output in
# DIR/logs/trial-NNN.log. Values are split on commas outside brackets, so lists sweep too:
# 'model.hidden_dims=[16,8],[32]' is two values. A failed trial is reported after the table
# and the sweep goes on; the exit status is 1 if any trial failed, 2 for a usage error.
# DIR (default sweeps/<config>-<time>) must not hold a sweep yet; --resume continues the
# sweep in DIR (same config, grids and extra arguments): finished trials are kept,
# interrupted ones continue from their last epoch, failed ones run again.
# At the end: the table (`csnets summarize DIR`), DIR/best.yaml and the command that trains it.
# Arguments after `--` go to `csnets sweep` (e.g. --data-dir D, --set k=v, -q).
# CSNETS overrides the command (default: csnets).
set -euo pipefail

usage() { echo "usage: $0 CONFIG 'section.key=v1,v2' ... [-j N] [--out DIR] [--resume] [--command train|random-search] [-- EXTRA_ARGS...]" >&2; exit 2; }

[[ $# -ge 1 ]] || usage
case $1 in -h|--help) sed -n '2,18p' "$0"; exit 0 ;; esac
config=$1; shift
[[ -f $config ]] || { echo "error: no config file $config" >&2; exit 2; }
args=(--config "$config" --backend local)
grids=0
while [[ $# -gt 0 ]]; do
  case $1 in
    -j) [[ $# -ge 2 ]] || usage; args+=(--jobs "$2"); shift 2 ;;
    -j*) args+=(--jobs "${1#-j}"); shift ;;
    --out|--command) [[ $# -ge 2 ]] || usage; args+=("$1" "$2"); shift 2 ;;
    --resume) args+=(--resume); shift ;;
    --) shift; args+=("$@"); break ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *=*) args+=(--grid "$1"); grids=$((grids + 1)); shift ;;
    *) echo "error: expected section.key=v1,v2,... got '$1'" >&2; usage ;;
  esac
done
(( grids >= 1 )) || { echo "error: give at least one section.key=v1,v2 grid" >&2; exit 2; }
read -r -a csnets <<< "${CSNETS:-csnets}"
exec "${csnets[@]}" sweep "${args[@]}"
