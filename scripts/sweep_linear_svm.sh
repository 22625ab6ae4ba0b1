#!/usr/bin/env bash
# Example sweep for configs/linear_svm.yaml (the grid around its tuned values). Extra arguments go to sweep.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/sweep.sh" "$here/../configs/linear_svm.yaml" \
  'optim.learning_rate=5e-8,1e-7,2e-7' 'model.reg=1e3,5e3,2e4' -j 2 "$@"
