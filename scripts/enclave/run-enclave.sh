#!/usr/bin/env bash
# Start the enclave built by build-eif.sh. Usage:
#   scripts/enclave/run-enclave.sh [--debug-mode] [CPU_COUNT] [MEMORY_MIB] [CID]
# Defaults: 2 vCPUs, 1536 MiB (scripts/enclave/allocator.yaml explains the figure), CID 16.
#
# Then, on the parent (README "Deploying to AWS Nitro Enclaves"):
#   node bin/enclavekit.js proxy serve --region REGION --listen vsock:8000 &     # or enclavekit-kms-proxy.service
#   node bin/enclavekit.js status --enclave vsock:16:5000 --expect-pcr 0=<PCR0> --json
#   node bin/enclavekit.js run --enclave vsock:16:5000 --expect-pcr 0=<PCR0> \
#     --dataset data.enc.ndjson --manifest data.manifest.json --query query.json --out result.json --audit audit.log
#
# --debug-mode: the enclave's console becomes readable (nitro-cli console --enclave-name
# enclavekit-worker) and its attestation documents carry PCR0, PCR1 and PCR2 as ALL ZEROS. A key
# policy naming the image's PCR0 therefore releases nothing to it (AWS KMS refuses debug documents
# anyway), `enclavekit run --expect-pcr` refuses it, and `enclavekit status` reports "debug": true.
# Use it to see why a worker does not start, never for data.
set -euo pipefail
cd "$(dirname "$0")/../.."
debug=()
if [ "${1:-}" = "--debug-mode" ]; then
  debug=(--debug-mode)
  shift
  echo "WARNING: debug mode: PCR0/1/2 attest as zeros; no real key will be released to this enclave" >&2
fi
nitro-cli run-enclave --enclave-name enclavekit-worker --eif-path enclavekit-worker.eif \
  --cpu-count "${1:-2}" --memory "${2:-1536}" --enclave-cid "${3:-16}" ${debug[@]+"${debug[@]}"}
if [ ${#debug[@]} -gt 0 ]; then
  echo "console: nitro-cli console --enclave-name enclavekit-worker" >&2
fi
