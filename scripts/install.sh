#!/usr/bin/env bash
# Install ml-matching for one stage from uv.lock. Shared by the Dockerfile and by CI (nox -s
# runtime_only), so the steps the image runs are the steps CI proves.
#   scripts/install.sh runtime [UV-SYNC-ARGS...]   the base package only: no scikit-learn
#   scripts/install.sh train [UV-SYNC-ARGS...]     the base package plus the train and postgres extras
#                                                  (the trainer's OUTCOMES_DB may be a postgresql:// URL)
# It installs into $UV_PROJECT_ENVIRONMENT (uv's default: .venv), the project itself as a wheel
# (not editable), every dependency at the version uv.lock pins; --locked refuses a stale lock.
# UV overrides the uv command (default: uv on the PATH).
set -euo pipefail
stage=${1:?usage: scripts/install.sh runtime|train [uv sync arguments]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
uv=${UV:-uv}
case "$stage" in
  runtime) extra=() ;;
  train) extra=(--extra train --extra postgres) ;;
  *) echo "scripts/install.sh: unknown stage '$stage' (expected runtime or train)" >&2; exit 2 ;;
esac
"$uv" sync --project "$here" --locked --no-editable --no-default-groups "${extra[@]}" "$@"
