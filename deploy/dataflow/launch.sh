#!/usr/bin/env bash
# Build the wirestream Flex Template and launch it on Dataflow.
#
#   deploy/dataflow/launch.sh build
#   deploy/dataflow/launch.sh batch     source=gs://BUCKET/archive/** sink=jsonl:gs://BUCKET/events
#   deploy/dataflow/launch.sh streaming 'source=kafka://HOST:9092/wires?group=wirestream&start=committed' sink=kafka://HOST:9092/events
#
# After the mode, each argument is one template parameter NAME=VALUE (the
# parameters are listed in deploy/dataflow/metadata.json). Settings from the
# environment:
#   PROJECT, REGION     Google Cloud project and Dataflow region (required)
#   BUCKET              gs://BUCKET for the template spec, staging and temp files (required)
#   IMAGE               image path, default REGION-docker.pkg.dev/PROJECT/wirestream/wirestream:0.1.0
#   MAX_WORKERS         autoscaling ceiling (default 10)
#   MACHINE_TYPE        worker machine type (default n2-standard-2)
#   JOB_NAME            default wirestream-MODE-<UTC time>
#   SERVICE_ACCOUNT, SUBNETWORK   optional worker service account and subnetwork
set -euo pipefail

mode="${1:?usage: launch.sh build | batch NAME=VALUE... | streaming NAME=VALUE...}"
shift

: "${PROJECT:?set PROJECT}" "${REGION:?set REGION}" "${BUCKET:?set BUCKET (gs://...)}"
IMAGE="${IMAGE:-${REGION}-docker.pkg.dev/${PROJECT}/wirestream/wirestream:0.1.0}"
TEMPLATE="${BUCKET}/templates/wirestream.json"

# The image's build context is the repository root.
cd "$(dirname "$0")/../.."

if [[ "$mode" == build ]]; then
  gcloud builds submit --project "$PROJECT" --region "$REGION" \
    --config deploy/dataflow/cloudbuild.yaml --substitutions "_IMAGE=${IMAGE}" .
  gcloud dataflow flex-template build "$TEMPLATE" --project "$PROJECT" \
    --image "$IMAGE" --sdk-language PYTHON \
    --metadata-file deploy/dataflow/metadata.json
  exit 0
fi

# Workers run the template's own image, so launcher and workers have the same
# code, data files and Beam release; nothing is installed at worker start-up.
# "~" separates parameters because values (Kafka URLs, broker lists) hold commas.
parameters="^~^sdk_container_image=${IMAGE}"
for parameter in "$@"; do
  parameters+="~${parameter}"
done

common=(
  --project "$PROJECT" --region "$REGION"
  --template-file-gcs-location "$TEMPLATE"
  --staging-location "${BUCKET}/staging" --temp-location "${BUCKET}/temp"
  --worker-machine-type "${MACHINE_TYPE:-n2-standard-2}"
  --max-workers "${MAX_WORKERS:-10}"
  --parameters "$parameters"
)
[[ -n "${SERVICE_ACCOUNT:-}" ]] && common+=(--service-account-email "$SERVICE_ACCOUNT")
[[ -n "${SUBNETWORK:-}" ]] && common+=(--subnetwork "$SUBNETWORK")
job_name="${JOB_NAME:-wirestream-${mode}-$(date -u +%Y%m%d-%H%M%S)}"

case "$mode" in
  batch)
    # A backfill: throughput-based autoscaling (Dataflow's batch default) up
    # to MAX_WORKERS; the job ends when the archive has been read.
    gcloud dataflow flex-template run "$job_name" "${common[@]}"
    ;;
  streaming)
    # The kafka:// source makes the pipeline streaming by itself. Streaming
    # Engine keeps state (near-duplicate windows, Kafka offsets) in the
    # service, which makes autoscaling and in-place updates cheap.
    gcloud dataflow flex-template run "$job_name" "${common[@]}" \
      --enable-streaming-engine
    ;;
  *)
    echo "launch.sh: unknown mode '$mode' (build, batch or streaming)" >&2
    exit 2
    ;;
esac
