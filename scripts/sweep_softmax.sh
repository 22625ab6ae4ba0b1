#!/usr/bin/env bash
# Example sweep for configs/softmax.yaml (the grid around its tuned values). Extra arguments go to sweep.sh (no Ray needed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/sweep.sh" "$here/../configs/softmax.yaml" \
  'optim.learning_rate=3e-4,1e-3,3e-3' 'model.reg=1e-3,1e-2,1e-1' -j 2 "$@"
