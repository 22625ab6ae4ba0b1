#!/usr/bin/env bash
# Example sweep for configs/linear_svm_features.yaml (the grid around its tuned values). Extra arguments go to sweep.sh (no Ray needed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/sweep.sh" "$here/../configs/linear_svm_features.yaml" \
  'optim.learning_rate=1e-3,3e-3,1e-2' 'model.reg=1e-4,1e-3,1e-2' -j 2 "$@"
