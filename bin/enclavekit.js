#!/usr/bin/env node
// The `enclavekit` command. It loads only the module of the command asked for (host/cli/main.ts loads
// each command's module on demand), so `enclavekit verify` does not pay for the AWS SDK, the X.509
// libraries or the worker: see scripts/bench/cli-startup.ts.
import { readFileSync } from 'node:fs';

const argv = process.argv.slice(2);

if (argv[0] === '--version' || argv[0] === '-v') {
  // Answered before anything else is loaded: package.json sits one folder up, in a checkout or an install.
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  process.stdout.write(argv.includes('--json') ? `${JSON.stringify({ name: 'enclavekit', version })}\n` : `${version}\n`);
} else {
  // The AWS SDK prints a Node-version notice on Node 20; it is not ours to show in CLI output.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
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
  process.exitCode = await mod.main(argv[0] === 'enclave' ? argv.slice(1) : simAttest ? argv.slice(2) : argv);
}
