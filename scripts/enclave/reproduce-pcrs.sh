#!/usr/bin/env bash
# Rebuild the worker image of a commit and compute its EIF's PCR0/1/2 without nitro-cli, to compare
# with the PCRs a key policy pins (README, "Reference values"). Needs docker with buildx (no Nitro
# instance, no nitro-cli) and AWS's blobs from aws-nitro-enclaves-cli (blobs/x86_64: bzImage,
# bzImage.config, cmdline, init, nsm.ko) in BLOBS.
#
#   BLOBS=/path/to/aws-nitro-enclaves-cli/blobs/x86_64 scripts/enclave/reproduce-pcrs.sh REGION [--fips]
#
# Prints the JSON of `enclavekit eif build` (pcrs "0", "1", "2"); writes reproduced.eif.
set -euo pipefail
cd "$(dirname "$0")/../.."
region=${1:?usage: BLOBS=DIR reproduce-pcrs.sh REGION [--fips]}
fips=false
if [ "${2:-}" = "--fips" ]; then fips=true; fi
blobs=${BLOBS:?set BLOBS to the folder with bzImage, bzImage.config, cmdline, init and nsm.ko}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
git archive --format=tar HEAD | docker buildx build -f scripts/enclave/Dockerfile --build-arg SOURCE_DATE_EPOCH="$epoch" \
  --build-arg AWS_REGION="$region" --build-arg AWS_USE_FIPS_ENDPOINT="$fips" \
  --output type=docker,name=enclavekit-worker:reproduced,rewrite-timestamp=true -
docker save enclavekit-worker:reproduced -o "$work/image.tar"

node bin/enclavekit.js eif ramdisk --init "$blobs/init" --nsm "$blobs/nsm.ko" --out "$work/bootstrap.cpio"
node bin/enclavekit.js eif ramdisk --image "$work/image.tar" --out "$work/app.cpio"
node bin/enclavekit.js eif build --kernel "$blobs/bzImage" --kernel-config "$blobs/bzImage.config" \
  --cmdline "$(cat "$blobs/cmdline")" --ramdisk "$work/bootstrap.cpio" --ramdisk "$work/app.cpio" \
  --name enclavekit-worker --out reproduced.eif --json
