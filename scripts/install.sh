#!/usr/bin/env bash
# Install ml-matching for one stage. Shared by the Dockerfile and by CI (nox -s runtime_only), so
# the steps the image runs are the steps CI proves.
#   scripts/install.sh runtime   the base package only: litestar, msgspec, numpy, onnxruntime, uvicorn
#   scripts/install.sh train     the base package plus the train extra (scikit-learn, skl2onnx, ...)
# PIP overrides the install command (default: python3 -m pip install).
set -euo pipefail
stage=${1:?usage: scripts/install.sh runtime|train}
here=$(cd "$(dirname "$0")/.." && pwd)
pip=${PIP:-python3 -m pip install --no-cache-dir}
case "$stage" in
  runtime) $pip "$here" ;;
  train) $pip "$here[train]" ;;
  *) echo "scripts/install.sh: unknown stage '$stage' (expected runtime or train)" >&2; exit 2 ;;
esac
