#!/bin/sh
# Command of the Bytewax helm chart's init-recovery container (waxctl
# --recovery): create the recovery partitions once, never over existing ones.
set -eu
: "${BYTEWAX_RECOVERY_DIRECTORY:?}" "${BYTEWAX_RECOVERY_PARTS:?}"
if ls "${BYTEWAX_RECOVERY_DIRECTORY}"/part-*.sqlite3 >/dev/null 2>&1; then
  echo "recovery partitions already in ${BYTEWAX_RECOVERY_DIRECTORY}"
else
  exec python -m bytewax.recovery "${BYTEWAX_RECOVERY_DIRECTORY}" "${BYTEWAX_RECOVERY_PARTS}"
fi
