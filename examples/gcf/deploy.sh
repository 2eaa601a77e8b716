#!/usr/bin/env bash
# Deploy the example shop as two Cloud Run functions (2nd gen) that reach Memorystore for
# Redis through a Serverless VPC Access connector, plus the schedule that drives the
# consumer. Run it from a packaged build, or from this directory:
#   make package PLATFORM=gcf APP=examples/gcf    (writes dist/gcf-gcf.zip)
#   unzip dist/gcf-gcf.zip -d build/shop && REDIS_URL=redis://10.0.0.3:6379/0 build/shop/deploy.sh
# A packaged build carries its dependencies as wheels in vendor/ and installs only those.
set -euo pipefail
cd "$(dirname "$0")"

: "${REDIS_URL:?set REDIS_URL to the Memorystore endpoint, e.g. redis://10.0.0.3:6379/0}"
REGION="${REGION:-us-central1}"
RUNTIME="${RUNTIME:-python312}"
VPC_CONNECTOR="${VPC_CONNECTOR:-redis-connector}"
CONCURRENCY="${CONCURRENCY:-8}"
TOPIC="${TOPIC:-shop-fulfil}"

common=(
  --gen2 --runtime="$RUNTIME" --region="$REGION" --source=.
  --vpc-connector="$VPC_CONNECTOR" --egress-settings=private-ranges-only
  --cpu=1 --memory=512Mi
)
if [ -d vendor ]; then
  common+=(--set-build-env-vars=GOOGLE_VENDOR_PIP_DEPENDENCIES=vendor)
fi

gcloud functions deploy shop-api "${common[@]}" \
  --entry-point=api --trigger-http --concurrency="$CONCURRENCY" --timeout=30s \
  --set-env-vars="REDIS_URL=${REDIS_URL},CLOUD_RUN_TIMEOUT_SECONDS=30,THREADS=${CONCURRENCY}"

gcloud pubsub topics describe "$TOPIC" >/dev/null 2>&1 || gcloud pubsub topics create "$TOPIC"
gcloud functions deploy shop-consume "${common[@]}" \
  --entry-point=consume --trigger-topic="$TOPIC" --concurrency=1 --timeout=60s \
  --set-env-vars="REDIS_URL=${REDIS_URL},CLOUD_RUN_TIMEOUT_SECONDS=60,THREADS=1,ORDER_WAIT_SECONDS=50"

gcloud scheduler jobs describe shop-fulfil --location="$REGION" >/dev/null 2>&1 ||
  gcloud scheduler jobs create pubsub shop-fulfil --location="$REGION" \
    --schedule="* * * * *" --topic="$TOPIC" --message-body="fulfil"
