#!/usr/bin/env bash
# Deploy one flow with waxctl, equivalent to deploy/k8s/overlays/OVERLAY:
# the same image, processes, workers, recovery and environment, read from the
# overlay's flow.env over deploy/k8s/base/flow.env.
#
#   IMAGE=registry.example.com/flinkish-bytewax:0.1.0 NAMESPACE=streams \
#     deploy/waxctl/deploy.sh session-analytics [more waxctl flags, e.g. --yes or --dry-run]
#
# Set DRY_PRINT=1 to print the waxctl command instead of running it. Unless
# the env files set TRANSACTIONAL_ID_PREFIX, the flow gets NAMESPACE.OVERLAY
# (NAMESPACE defaults to waxctl's `default`), unique per deployment.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
k8s="$here/../k8s"
usage() {
  echo "usage: [IMAGE=REPOSITORY:TAG] [NAMESPACE=NS] [DRY_PRINT=1] deploy.sh OVERLAY [waxctl flags...]"
  echo "overlays: $(cd "$k8s/overlays" && echo */ | tr -d /)"
}
if [[ $# -lt 1 ]]; then
  usage >&2
  exit 2
fi
if [[ "$1" == -h || "$1" == --help ]]; then
  usage
  exit 0
fi
overlay="$1"
shift
overlay_env="$k8s/overlays/$overlay/flow.env"
if [[ ! -f "$overlay_env" ]]; then
  echo "deploy.sh: no overlay $overlay (expected $overlay_env)" >&2
  exit 2
fi

declare -A env=()
declare -a keys=()
while IFS= read -r line || [[ -n "$line" ]]; do
  [[ -z "$line" || "$line" == \#* ]] && continue
  key="${line%%=*}"
  [[ -v "env[$key]" ]] || keys+=("$key")
  env[$key]="${line#*=}"
done < <(cat "$k8s/base/flow.env" "$overlay_env")

image="${IMAGE:-flinkish-bytewax:0.1.0}"
repository="${image%:*}"
tag="${image##*:}"
if [[ "$repository" == "$image" || "$tag" == */* ]]; then
  echo "deploy.sh: IMAGE must be REPOSITORY:TAG, got $image" >&2
  exit 2
fi

args=(
  dataflow deploy "$here/dataflow.py"
  --name "$overlay"
  --image-repository "$repository"
  --image-tag "$tag"
  --image-pull-policy IfNotPresent
  --chart-values-file "$here/values.yaml"
  --processes "${env[PROCESSES]}"
  --workers "${env[WORKERS_PER_PROCESS]}"
)
if [[ -n "${NAMESPACE:-}" ]]; then
  args+=(--namespace "$NAMESPACE")
fi
if [[ -n "${env[RECOVERY_DIR]:-}" ]]; then
  args+=(
    --recovery
    --recovery-parts "${env[RECOVERY_PARTS]}"
    --recovery-snapshot-interval "${env[SNAPSHOT_SECONDS]}"
    --recovery-backup-interval "${env[BACKUP_SECONDS]}"
    --recovery-size "${RECOVERY_SIZE:-10Gi}"
  )
fi
for key in "${keys[@]}"; do
  case "$key" in
    # Cluster layout, recovery placement and the API server are the chart's.
    PROCESSES | WORKERS_PER_PROCESS | CLUSTER_PORT | RECOVERY_* | BYTEWAX_DATAFLOW_API_*) ;;
    *) args+=(-e "$key=${env[$key]}") ;;
  esac
done
if [[ ! -v "env[TRANSACTIONAL_ID_PREFIX]" ]]; then
  args+=(-e "TRANSACTIONAL_ID_PREFIX=${NAMESPACE:-default}.$overlay")
fi
args+=("$@")

if [[ -n "${DRY_PRINT:-}" ]]; then
  printf '%q ' waxctl "${args[@]}"
  echo
else
  exec waxctl "${args[@]}"
fi
