#!/usr/bin/env bash
# Build the worker image and its EIF on a Nitro-enabled parent instance, for one region (and the FIPS
# KMS endpoint with --fips); print its PCRs, the memory nitro-cli will require, the KMS proxy
# allowlist and the key policy that releases data keys only to this image.
#
# Needs docker and nitro-cli (aws-nitro-enclaves-cli). Usage:
#   scripts/enclave/build-eif.sh REGION [--fips] [ACCOUNT_ID]
# With ACCOUNT_ID and KEY_ADMIN_ARN, DATA_OWNER_ARN and ROLE_ARN in the environment, the key policy is
# written to enclavekit-worker.key-policy.json (PCR0/1/2, and PCR3 = the parent role when
# PCR3_ROLE_ARN is set). Outputs, in the repository root:
#   enclavekit-worker.eif, enclavekit-worker.measurements.json, enclavekit-worker.vsock-proxy.yaml
set -euo pipefail
cd "$(dirname "$0")/../.."
region=${1:?usage: build-eif.sh REGION [--fips] [ACCOUNT_ID]}
shift
fips=false
if [ "${1:-}" = "--fips" ]; then fips=true; shift; fi
account=${1:-}
fipsflag=()
if [ "$fips" = true ]; then fipsflag=(--fips); fi

# One region setting: the allowlist and the image's KMS endpoint come from the same function.
node bin/enclavekit.js proxy allowlist --region "$region" ${fipsflag[@]+"${fipsflag[@]}"} --out enclavekit-worker.vsock-proxy.yaml
endpoint=$(node bin/enclavekit.js proxy allowlist --region "$region" ${fipsflag[@]+"${fipsflag[@]}"} --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["endpoint"])')
echo "KMS endpoint: $endpoint (allowlist: enclavekit-worker.vsock-proxy.yaml)"

# Reproducible (README, "Reference values"): the committed tree only (git archive HEAD), every file time
# = the commit's time, BuildKit rewriting layer timestamps. scripts/enclave/reproduce-pcrs.sh rebuilds
# the same image and recomputes the PCRs without nitro-cli.
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
git archive --format=tar HEAD | docker buildx build -f scripts/enclave/Dockerfile --build-arg SOURCE_DATE_EPOCH="$epoch" \
  --build-arg AWS_REGION="$region" --build-arg AWS_USE_FIPS_ENDPOINT="$fips" \
  --output type=docker,name=enclavekit-worker:latest,rewrite-timestamp=true -
nitro-cli build-enclave --docker-uri enclavekit-worker:latest --output-file enclavekit-worker.eif | tee enclavekit-worker.measurements.json
pcr() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Measurements"][sys.argv[2]])' enclavekit-worker.measurements.json "$1"; }
pcr0=$(pcr PCR0); pcr1=$(pcr PCR1); pcr2=$(pcr PCR2)
echo "PCR0 $pcr0"
echo "PCR1 $pcr1"
echo "PCR2 $pcr2"

# nitro-cli run-enclave needs at least 4 x the EIF size (E26 otherwise).
eif_mib=$(( ($(stat -c %s enclavekit-worker.eif) + 1048575) / 1048576 ))
echo "EIF ${eif_mib} MiB: run it with --memory >= $(( eif_mib * 4 )) MiB (memory_mib in /etc/nitro_enclaves/allocator.yaml at least that)"

if [ -n "$account" ]; then
  if [ -n "${KEY_ADMIN_ARN:-}" ] && [ -n "${DATA_OWNER_ARN:-}" ] && [ -n "${ROLE_ARN:-}" ]; then
    pcr3=()
    if [ -n "${PCR3_ROLE_ARN:-}" ]; then pcr3=(--pcr3-role-arn "$PCR3_ROLE_ARN"); fi
    node bin/enclavekit.js policy --account "$account" --key-admin "$KEY_ADMIN_ARN" --data-owner "$DATA_OWNER_ARN" \
      --role "$ROLE_ARN" --pcr "0=$pcr0" --pcr "1=$pcr1" --pcr "2=$pcr2" ${pcr3[@]+"${pcr3[@]}"} > enclavekit-worker.key-policy.json
    echo "key policy for this image: enclavekit-worker.key-policy.json"
  else
    echo "key policy: set KEY_ADMIN_ARN, DATA_OWNER_ARN and ROLE_ARN, or run:"
    echo "  enclavekit policy --account $account --key-admin ARN --data-owner ARN --role ARN --pcr 0=$pcr0 --pcr 1=$pcr1 --pcr 2=$pcr2"
  fi
fi
