#!/usr/bin/env bash
# Start the enclave built by build-eif.sh. Then run jobs from the parent with, for example:
#   node bin/enclavekit.js run --enclave vsock:16:5000 --expect-pcr 0=<PCR0> \
#     --kms-listen vsock:8000 --kms-allow-file scripts/enclave/vsock-proxy.yaml \
#     --kms-endpoint https://kms.us-east-1.amazonaws.com \
#     --dataset data.enc.ndjson --manifest data.manifest.json --query query.json --out result.json --audit audit.log
# Usage: scripts/enclave/run-enclave.sh [CPU_COUNT] [MEMORY_MIB] [CID]
set -euo pipefail
cd "$(dirname "$0")/../.."
nitro-cli run-enclave --eif-path enclavekit-worker.eif --cpu-count "${1:-2}" --memory "${2:-1024}" --enclave-cid "${3:-16}"
