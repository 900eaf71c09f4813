#!/usr/bin/env bash
# Train on a Cloud TPU VM or pod slice: installs vgan_jax on every worker and starts
# the same command everywhere; jax.distributed finds its peers on a TPU VM, so no
# coordinator flags are needed. Each host reads its own shard of the data.
#
#   TPU_NAME=my-v4-32 ZONE=us-central2-b WORKDIR=gs://bucket/runs/mnist64 \
#     bash experiments/tpu/launch_pod.sh [--config.train.steps=100000 ...]
#
# WORKDIR and DATA_DIR may be gs:// paths (Orbax and tfds read and write GCS).
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}" "${WORKDIR:?set WORKDIR}"
CONFIG=${CONFIG:-gpu}  # a preset name (vgan_jax/configs) or a config file
DATA_DIR=${DATA_DIR:-\$HOME/tensorflow_datasets}
REPO=${REPO:-https://github.com/vgan-jax/vgan_jax.git}

gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command "
  set -e
  if [ ! -d vgan_jax ]; then git clone -q $REPO vgan_jax; fi
  cd vgan_jax && git pull -q
  python3 -m pip install -q -U 'jax[tpu]' -e .
  nohup python3 -m vgan_jax.cli train --config=$CONFIG --workdir=$WORKDIR \
    --config.data.data_dir=$DATA_DIR $* > train.log 2>&1 &
  echo started on \$(hostname)
"
echo "logs: gcloud compute tpus tpu-vm ssh $TPU_NAME --zone $ZONE --worker=0 --command 'tail -f vgan_jax/train.log'"
