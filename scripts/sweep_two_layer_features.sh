#!/usr/bin/env bash
# Example sweep for configs/two_layer_features.yaml (the grid around its tuned values). Extra arguments go to sweep.sh (no Ray needed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/sweep.sh" "$here/../configs/two_layer_features.yaml" \
  'optim.learning_rate=3e-2,1e-1,3e-1' 'model.reg=3e-4,1e-3,3e-3' -j 2 "$@"
