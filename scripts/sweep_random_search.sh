#!/usr/bin/env bash
# Example sweep for configs/random_search.yaml (the grid around its tuned values). Extra arguments go to sweep.sh (no Ray needed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/sweep.sh" "$here/../configs/random_search.yaml" \
  'search.scale=1e-5,1e-4,1e-3' 'seed=0,1,2' -j 2 --command random-search "$@"
