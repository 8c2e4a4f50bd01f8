/** The deployment files in scripts/enclave/ agree with the CLI they drive. */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { parseAllowlistYaml } from '../../host/kms-proxy.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const read = (p: string) => readFileSync(ROOT + p, 'utf8');

describe('scripts/enclave', () => {
  it('vsock-proxy.yaml is a valid allowlist naming only KMS over TLS', () => {
    expect(parseAllowlistYaml(read('scripts/enclave/vsock-proxy.yaml'))).toEqual([{ host: 'kms.us-east-1.amazonaws.com', port: 443 }]);
  });

  it("the Dockerfile's worker command parses, and fails only for want of /dev/nsm on this machine", () => {
    const cmd = /exec node bin\/enclavekit\.js (enclave [^"]+?) --region/.exec(read('scripts/enclave/Dockerfile'));
    expect(cmd).not.toBeNull();
    // --platform nitro opens the NSM before listening or reaching KMS, so nothing is bound or dialled here.
    const r = spawnSync(process.execPath, ['bin/enclavekit.js', ...cmd![1]!.split(' '), '--region', 'us-east-1'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/ERR_PLATFORM_UNAVAILABLE/);
    expect(r.stderr).not.toMatch(/unknown|usage/i);
  });
});
