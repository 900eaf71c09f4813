#!/usr/bin/env bash
# Train on a Cloud TPU VM or pod slice: copies this working tree (or clones $REPO) to
# every worker, installs it with the TPU jax extra, and starts the same training command
# on all workers at once (`--worker=all`). jax.distributed finds its peers on a TPU VM,
# so no coordinator flags are needed; each host reads its own shard of the data.
#
#   TPU_NAME=my-v4-32 ZONE=us-central2-b WORKDIR=gs://bucket/runs/mnist64 \
#     bash experiments/tpu/launch_pod.sh [--config.train.steps=100000 ...]
#
# Environment:
#   TPU_NAME, ZONE, WORKDIR   required. WORKDIR and DATA_DIR should be gs:// paths on a
#                             pod (every host must see the same checkpoints; Orbax and
#                             tfds read and write GCS).
#   CONFIG     a preset name (vgan_jax/configs: gpu, gpu128, ...) or a config file path
#              inside the tree (default: gpu).
#   DATA_DIR   passed as --config.data.data_dir (default: the preset's; tfds's
#              ~/tensorflow_datasets on each worker).
#   PROJECT    gcloud --project (default: gcloud's configured project).
#   REPO, REF  clone this git URL (at branch/tag/commit REF) on the workers instead of
#              copying the local tree. Default: copy the local working tree, i.e. the
#              tracked and untracked-but-not-ignored files as they are on disk,
#              uncommitted edits included (what you run is what you tested).
#   JAX_SPEC   the pip requirement for jax on the workers (default: jax[tpu] within the
#              range pyproject.toml allows).
#   REMOTE_DIR where the tree goes on each worker, relative to $HOME (default: vgan_jax).
#
# Extra arguments are appended to `vgan-jax train` on every worker, shell-quoted.
# A previous run still holding the TPU must be stopped first:
#   gcloud compute tpus tpu-vm ssh $TPU_NAME --zone $ZONE --worker=all \
#     --command 'pkill -f "vgan_jax.cli train"'
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}" "${WORKDIR:?set WORKDIR}"
CONFIG=${CONFIG:-gpu}
DATA_DIR=${DATA_DIR:-}
PROJECT=${PROJECT:-}
REPO=${REPO:-}
REF=${REF:-}
JAX_SPEC=${JAX_SPEC:-jax[tpu]>=0.10,<0.12}
REMOTE_DIR=${REMOTE_DIR:-vgan_jax}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

gcloud_args=(--zone "$ZONE" --worker=all)
if [ -n "$PROJECT" ]; then gcloud_args+=(--project "$PROJECT"); fi

# Everything interpolated into the remote command is quoted here, once: paths with
# spaces or shell characters reach the workers as one argument each.
q() { printf '%q' "$1"; }
train_args=(--config="$CONFIG" --workdir="$WORKDIR")
if [ -n "$DATA_DIR" ]; then train_args+=(--config.data.data_dir="$DATA_DIR"); fi
train_args+=("$@")
quoted_train=""
for arg in "${train_args[@]}"; do quoted_train+=" $(q "$arg")"; done

ARCHIVE=vgan_jax_src.tar.gz  # in the workers' $HOME
if [ -z "$REPO" ]; then
  tarball=$(mktemp "${TMPDIR:-/tmp}/vgan_jax_src.XXXXXX")
  trap 'rm -f "$tarball"' EXIT
  if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Files git would show: tracked plus untracked-not-ignored (.venv, runs/ stay home).
    # (A tracked file deleted on disk is left out, as the tree has it.)
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
      | while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done \
      | tar --null -T - -czf "$tarball")
  else
    tar -C "$ROOT" --exclude=.venv --exclude=.git --exclude=runs -czf "$tarball" .
  fi
  echo "copying $(du -h "$tarball" | cut -f1) of source from $ROOT to every worker of $TPU_NAME"
  gcloud compute tpus tpu-vm scp "$tarball" "$TPU_NAME:$ARCHIVE" "${gcloud_args[@]}"
  fetch="rm -rf $(q "$REMOTE_DIR") && mkdir -p $(q "$REMOTE_DIR")
  tar -xzf $ARCHIVE -C $(q "$REMOTE_DIR") && rm -f $ARCHIVE"
else
  fetch="rm -rf $(q "$REMOTE_DIR") && git clone -q $(q "$REPO") $(q "$REMOTE_DIR")"
  if [ -n "$REF" ]; then fetch+=" && git -C $(q "$REMOTE_DIR") checkout -q $(q "$REF")"; fi
fi

gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${gcloud_args[@]}" --command "
  set -e
  cd \$HOME
  $fetch
  cd $(q "$REMOTE_DIR")
  python3 -m pip install -q -U $(q "$JAX_SPEC") -e .
  nohup python3 -m vgan_jax.cli train$quoted_train > train.log 2>&1 < /dev/null &
  echo started on \$(hostname)
"
echo "logs: gcloud compute tpus tpu-vm ssh $TPU_NAME --zone $ZONE --worker=0" \
  "--command 'tail -f $REMOTE_DIR/train.log'"
