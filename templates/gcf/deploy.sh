#!/usr/bin/env bash
# Deploy {{name}} as a Cloud Run function (2nd gen) that reaches Memorystore for Redis
# through a Serverless VPC Access connector. Every setting below can be overridden from
# the environment, e.g. REGION=europe-west1 CONCURRENCY=16 ./deploy.sh
set -euo pipefail
cd "$(dirname "$0")"

: "${REDIS_URL:?set REDIS_URL to the Memorystore endpoint, e.g. redis://10.0.0.3:6379/0}"
NAME="{{name}}"
FUNCTION="${FUNCTION:-$NAME}"
REGION="${REGION:-us-central1}"
RUNTIME="${RUNTIME:-python312}"
# A connector in the same region and VPC as the Redis instance:
#   gcloud compute networks vpc-access connectors create redis-connector \
#     --region=us-central1 --network=default --range=10.8.0.0/28
VPC_CONNECTOR="${VPC_CONNECTOR:-redis-connector}"
# Requests served at once by one instance. functions-framework runs that many threads
# (THREADS), and faaspool sizes each instance's pool to it.
CONCURRENCY="${CONCURRENCY:-8}"
# Seconds. The platform's request timeout; faaspool bounds every Redis wait by it.
TIMEOUT="${TIMEOUT:-60}"
CPU="${CPU:-1}"
MEMORY="${MEMORY:-512Mi}"
MAX_INSTANCES="${MAX_INSTANCES:-20}"

build=()
if [ -d vendor ]; then
  # A `make package` build: dependencies are wheels in vendor/, installed from there only.
  build+=(--set-build-env-vars=GOOGLE_VENDOR_PIP_DEPENDENCIES=vendor)
fi

gcloud functions deploy "$FUNCTION" \
  --gen2 \
  --runtime="$RUNTIME" \
  --region="$REGION" \
  --source=. \
  --entry-point=handler \
  --trigger-http \
  --vpc-connector="$VPC_CONNECTOR" \
  --egress-settings=private-ranges-only \
  --concurrency="$CONCURRENCY" \
  --cpu="$CPU" \
  --memory="$MEMORY" \
  --timeout="${TIMEOUT}s" \
  --max-instances="$MAX_INSTANCES" \
  --set-env-vars="REDIS_URL=${REDIS_URL},CLOUD_RUN_TIMEOUT_SECONDS=${TIMEOUT},THREADS=${CONCURRENCY}" \
  ${build[@]+"${build[@]}"} \
  "$@"
