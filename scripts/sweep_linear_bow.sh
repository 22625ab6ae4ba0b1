#!/usr/bin/env bash
# Example sweep for configs/linear_bow.yaml (the grid its header reports). Extra arguments go to sweep.sh (no Ray needed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/sweep.sh" "$here/../configs/linear_bow.yaml" \
  'optim.learning_rate=3e-3,1e-2,3e-2,1e-1' 'model.reg=1e-4,1e-3' "$@"
