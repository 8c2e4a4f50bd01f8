#!/usr/bin/env bash
# Wait until the worker enclave answers `enclavekit status` as the expected image, or give up.
# Usage: wait-healthy.sh [SECONDS]   (settings from /etc/enclavekit/enclavekit.env, as the units use)
# Exit 0 healthy; otherwise the last status exit code (1 wrong image / bad evidence, 3 unreachable).
set -uo pipefail
deadline=$(( $(date +%s) + ${1:-120} ))
home=${ENCLAVEKIT_HOME:-$(cd "$(dirname "$0")/../.." && pwd)}
code=3
while [ "$(date +%s)" -lt "$deadline" ]; do
  # shellcheck disable=SC2086 # ENCLAVEKIT_STATUS_EXPECT holds several flags on purpose
  node "$home/bin/enclavekit.js" status --enclave "vsock:${ENCLAVE_CID:-16}:${ENCLAVE_PORT:-5000}" ${ENCLAVEKIT_STATUS_EXPECT:-} --timeout 3000 --json && exit 0
  code=$?
  # A wrong image will not become right by waiting.
  [ "$code" -eq 1 ] && exit 1
  sleep 2
done
exit "$code"
