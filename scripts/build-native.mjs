// The project's install step: build the native addon with node-gyp (npm ships it; npm sets
// npm_config_node_gyp to its path). A failed build is not fatal: importing enclavekit still works and
// the native functions explain what is missing; the simulator runs in pure Node. CI sets
// ENCLAVEKIT_REQUIRE_NATIVE=1 to make a failed build fail the install. ENCLAVEKIT_SKIP_NATIVE=1 skips
// the build (a dependent that never uses vsock, the NSM device or the batched AES-GCM path, or a
// container image that builds the addon in an earlier stage).
// Runs from the repository and from an installed package alike (npm runs it in the package folder;
// the package ships binding.gyp, native/src and this script).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

if (!existsSync('binding.gyp')) process.exit(0);
if (process.env.ENCLAVEKIT_SKIP_NATIVE === '1') {
  console.warn('enclavekit: ENCLAVEKIT_SKIP_NATIVE=1: the native addon is not built; vsock, the NSM device and the batched AES-GCM path are unavailable');
  process.exit(0);
}
const gyp = process.env.npm_config_node_gyp;
const rebuild = ['rebuild'];
// Prefer the headers installed next to this node (distribution packages ship them) over a download,
// so the build also works offline. An explicit npm_config_nodedir still wins.
const prefix = dirname(dirname(process.execPath));
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  rebuild.push(`--nodedir=${prefix}`);
}
const [cmd, args] = gyp ? [process.execPath, [gyp, ...rebuild]] : ['node-gyp', rebuild];
const r = spawnSync(cmd, args, { stdio: 'inherit' });
if (r.status !== 0) {
  const msg =
    r.error?.code === 'ENOENT'
      ? 'enclavekit: node-gyp was not found; build the native addon with `npm run install` (npm provides node-gyp)'
      : 'enclavekit: the native addon did not build (needs python3, make and a C++ compiler); vsock, the NSM device and the batched AES-GCM path are unavailable';
  if (process.env.ENCLAVEKIT_REQUIRE_NATIVE === '1') {
    console.error(msg);
    process.exit(1);
  }
  console.warn(msg);
}
