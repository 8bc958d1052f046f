#!/bin/sh
# Container command of the Bytewax helm chart that waxctl deploys
# (`sh ./entrypoint.sh` in the image's working directory). bytewax.run reads
# the chart's variables itself: the process id from BYTEWAX_POD_NAME and
# BYTEWAX_STATEFULSET_NAME, the addresses from BYTEWAX_HOSTFILE_PATH, workers
# from BYTEWAX_WORKERS_PER_PROCESS and, with --recovery, the partitions from
# BYTEWAX_RECOVERY_DIRECTORY. The file it runs is deploy/waxctl/dataflow.py;
# eventio.run is bytewax.run with the garbage collector tuned for keyed state
# (STREAM_GC_THRESHOLD).
set -eu
if [ -n "${BYTEWAX_RECOVERY_DIRECTORY:-}" ]; then
  export BYTEWAX_SNAPSHOT_INTERVAL="${BYTEWAX_SNAPSHOT_INTERVAL:-${SNAPSHOT_SECONDS:-30}}"
  export BYTEWAX_RECOVERY_BACKUP_INTERVAL="${BYTEWAX_RECOVERY_BACKUP_INTERVAL:-${BACKUP_SECONDS:-0}}"
fi
exec python -m eventio.run "${BYTEWAX_PYTHON_FILE_PATH:?set by the Bytewax helm chart}"
