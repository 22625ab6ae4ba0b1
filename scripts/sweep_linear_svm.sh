#!/usr/bin/env bash
# Example sweep for configs/linear_svm.yaml (the grid around its tuned values). Extra arguments go to sweep.sh (no Ray needed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/sweep.sh" "$here/../configs/linear_svm.yaml" \
  'optim.learning_rate=3e-5,1e-4,3e-4' 'model.reg=1e-3,1e-2,1e-1' -j 2 "$@"
