#!/usr/bin/env bash
# Runs test/native/valgrind-exercise.ts (every addon entry point, bundled to plain JS) under valgrind memcheck and fails
# on any error in the process. Leak checking is limited to definite leaks whose stacks pass through
# the addon: V8 and Node keep process-lifetime allocations that valgrind would otherwise list.
# Usage: scripts/valgrind.sh   (or: npm run test:valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
[ -f build/Release/enclavekit_native.node ] || { echo "build the addon first (npm rebuild / npm ci)" >&2; exit 2; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Bundle the TypeScript exercise to plain JS first (under build/, so node_modules resolves): a
# loader under valgrind is slow and adds its own noise.
out=build/valgrind/exercise.mjs
npx esbuild test/native/valgrind-exercise.ts --bundle --platform=node --format=esm --target=node20 \
  --packages=external --log-level=warning --outfile="$out"
set +e
ENCLAVEKIT_NATIVE_PATH="$PWD/build/Release/enclavekit_native.node" \
valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
  --errors-for-leak-kinds=definite --undef-value-errors=yes --track-origins=no \
  --suppressions=scripts/valgrind-node.supp --log-file="$log" \
  node "$out"
rc=$?
set -e
grep -E "ERROR SUMMARY|definitely lost|Invalid|uninitialised" "$log" || true
if [ $rc -ne 0 ]; then
  echo "valgrind: FAILED (exit $rc); full log follows" >&2
  cat "$log" >&2
  exit 1
fi
echo "valgrind: 0 errors"
