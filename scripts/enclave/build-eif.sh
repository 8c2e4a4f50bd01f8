#!/usr/bin/env bash
# Build the enclave image and its EIF on a Nitro-enabled parent instance, then print its PCRs and the
# KMS key policy that releases data keys only to this image.
# Needs docker and nitro-cli (aws-nitro-enclaves-cli). Usage: scripts/enclave/build-eif.sh [REGION] [ACCOUNT_ID]
set -euo pipefail
cd "$(dirname "$0")/../.."
region=${1:-us-east-1}
account=${2:-}
docker build -f scripts/enclave/Dockerfile --build-arg AWS_REGION="$region" -t enclavekit-worker:latest .
nitro-cli build-enclave --docker-uri enclavekit-worker:latest --output-file enclavekit-worker.eif | tee enclavekit-worker.measurements.json
pcr() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Measurements"][sys.argv[2]])' enclavekit-worker.measurements.json "$1"; }
pcr0=$(pcr PCR0); pcr1=$(pcr PCR1); pcr2=$(pcr PCR2)
echo "PCR0 $pcr0"
echo "PCR1 $pcr1"
echo "PCR2 $pcr2"
if [ -n "$account" ]; then
  echo "key policy for this image:"
  node bin/enclavekit.js policy --account "$account" --pcr "0=$pcr0" --pcr "1=$pcr1" --pcr "2=$pcr2"
fi
