#!/usr/bin/env bash
# Build the enclave image and its EIF on a Nitro-enabled parent instance, then print its PCRs and the
# KMS key policy that releases data keys only to this image.
# Needs docker and nitro-cli (aws-nitro-enclaves-cli). Usage: scripts/enclave/build-eif.sh [REGION] [ACCOUNT_ID]
# (with ACCOUNT_ID, set KEY_ADMIN_ARN, DATA_OWNER_ARN and ROLE_ARN to get the key policy printed)
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
  # The policy names three distinct IAM roles/users (never the account root): KEY_ADMIN_ARN,
  # DATA_OWNER_ARN and ROLE_ARN (the parent instance's role) from the environment.
  if [ -n "${KEY_ADMIN_ARN:-}" ] && [ -n "${DATA_OWNER_ARN:-}" ] && [ -n "${ROLE_ARN:-}" ]; then
    echo "key policy for this image:"
    node bin/enclavekit.js policy --account "$account" --key-admin "$KEY_ADMIN_ARN" --data-owner "$DATA_OWNER_ARN" \
      --role "$ROLE_ARN" --pcr "0=$pcr0" --pcr "1=$pcr1" --pcr "2=$pcr2"
  else
    echo "key policy: set KEY_ADMIN_ARN, DATA_OWNER_ARN and ROLE_ARN, or run:"
    echo "  enclavekit policy --account $account --key-admin ARN --data-owner ARN --role ARN --pcr 0=$pcr0 --pcr 1=$pcr1 --pcr 2=$pcr2"
  fi
fi
