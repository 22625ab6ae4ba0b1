#!/usr/bin/env bash
# Example sweep for configs/two_layer.yaml (the grid around its tuned values). Extra arguments go to sweep.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/sweep.sh" "$here/../configs/two_layer.yaml" \
  'optim.learning_rate=5e-4,1e-3,2e-3' 'model.reg=1e-4,1e-3,1e-2' -j 2 "$@"
