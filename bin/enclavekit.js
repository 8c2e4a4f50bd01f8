#!/usr/bin/env node
// The AWS SDK prints a Node-version notice on Node 20; it is not ours to show in CLI output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const argv = process.argv.slice(2);
// The worker is its own program (enclave/ may not be imported by host/), so dispatch here; so is
// `sim attest`, which issues evidence as the simulated platform does (`sim kms` is the host's).
const simAttest = argv[0] === 'sim' && argv[1] === 'attest';
const entry = argv[0] === 'enclave' ? '../dist/enclave/cli.js' : simAttest ? '../dist/enclave/cli-sim-attest.js' : '../dist/host/cli/main.js';
let mod;
try {
  mod = await import(new URL(entry, import.meta.url).href);
} catch (e) {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('/dist/')) {
    process.stderr.write('enclavekit: the TypeScript build is missing; run `npm ci` (or `npm run build`) first\n');
    process.exit(2);
  }
  throw e;
}
const code = await mod.main(argv[0] === 'enclave' ? argv.slice(1) : simAttest ? argv.slice(2) : argv);
process.exitCode = code;
