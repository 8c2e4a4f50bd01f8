/**
 * enclavekit as a dependency (issue #11): `npm pack` on a clean copy of the repository (its `prepare`
 * builds dist/), the tarball installed into a fresh project (the `install` script builds the addon from
 * the shipped binding.gyp and native/src), every subpath export imported from ESM and from CommonJS,
 * the types present, `npx enclavekit --version` and `npx enclavekit verify --json` on a real document,
 * and a failed addon build that still leaves a usable package.
 *
 * Offline from the npm cache (`--prefer-offline`; CI runs `npm ci` first). Skipped, saying why, only
 * when npm can neither reach the registry nor find a package in its cache.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ROOT } from './helpers.js';

interface Done {
  code: number;
  stdout: string;
  stderr: string;
}

function sh(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Done> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Fail with the command's own output when it did not succeed. */
function ok(d: Done, what: string): void {
  if (d.code !== 0) throw new Error(`${what} exited ${d.code}:\n${(d.stderr || d.stdout).slice(-4000)}`);
}

/** What a checkout has (no node_modules, dist, build or .git): what `npm pack` runs `prepare` on. */
const NOT_COPIED = new Set(['node_modules', 'dist', 'build', '.git']);

const NETWORK = /ENOTCACHED|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|network request|request to .* failed/;

const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; exports: Record<string, string | { types?: string; default: string }> };
const specifier = (subpath: string) => (subpath === '.' ? 'enclavekit' : `enclavekit/${subpath.slice(2)}`);

describe('npm pack, then install the tarball into another project', () => {
  it('ships what a dependent needs, and it works there', { timeout: 240_000 }, async (ctx) => {
    const work = mkdtempSync(join(tmpdir(), 'ek-pack-'));
    try {
      // 1. A clean copy of the repository; npm pack runs `prepare` (tsc) there, not in this tree.
      const src = join(work, 'src');
      cpSync(ROOT, src, { recursive: true, filter: (p) => !NOT_COPIED.has(relative(ROOT, p).split('/')[0]!) });
      symlinkSync(join(ROOT, 'node_modules'), join(src, 'node_modules'), 'dir');
      const pack = await sh('npm', ['pack', '--json', '--pack-destination', work], { cwd: src, timeoutMs: 180_000 });
      ok(pack, 'npm pack');
      const packed = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
      const files = packed[0]!.files.map((f) => f.path);
      const tarball = join(work, packed[0]!.filename);

      // What is in it: built JS and types, the addon's sources and build script, schemas, pinned roots.
      for (const [sub, e] of Object.entries(PKG.exports)) {
        if (typeof e === 'string') expect(files).toContain(e.replace(/^\.\//, ''));
        else {
          expect(files, sub).toContain(e.default.replace(/^\.\//, ''));
          if (e.types) expect(files, sub).toContain(e.types.replace(/^\.\//, ''));
        }
      }
      for (const f of ['bin/enclavekit.js', 'binding.gyp', 'scripts/build-native.mjs', 'native/src/addon.cc', 'schemas/release-policy.schema.json', 'attestation/nitro/roots/aws-nitro-enclaves-root-g1.pem', 'dist/enclave/cli.js', 'README.md'])
        expect(files).toContain(f);
      // ...and nothing else: no tests, vectors, TypeScript sources, configs or benchmarks.
      const stray = files.filter((f) => !/^(dist\/.*\.(js|d\.ts)|bin\/enclavekit\.js|binding\.gyp|native\/src\/[^/]+\.(cc|h)|scripts\/build-native\.mjs|schemas\/[^/]+\.json|attestation\/(nitro|sevsnp)\/roots\/[^/]+\.pem|README\.md|LICENSE|package\.json)$/.test(f));
      expect(stray).toEqual([]);
      expect(files.some((f) => f.startsWith('dist/test/') || f.endsWith('.test.js'))).toBe(false);

      // 2. A fresh project installs it. The install script builds the addon (unless skipped).
      const app = join(work, 'app');
      mkdirSync(app);
      writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
      const install = await sh('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app, timeoutMs: 180_000 });
      if (install.code !== 0 && NETWORK.test(install.stderr)) {
        ctx.skip(`npm install could not reach the registry and a package is not in the npm cache: ${install.stderr.split('\n').find((l) => NETWORK.test(l))}`);
      }
      ok(install, 'npm install');
      const pkgDir = join(app, 'node_modules', 'enclavekit');
      const built = existsSync(join(pkgDir, 'build', 'Release', 'enclavekit_native.node'));
      if (process.env.ENCLAVEKIT_REQUIRE_NATIVE === '1') expect(built).toBe(true);

      // 3. Every subpath export from ESM and from CommonJS (require(esm), Node 20.19+).
      const subpaths = Object.keys(PKG.exports);
      writeFileSync(
        join(app, 'esm.mjs'),
        `const out = {};\nfor (const s of ${JSON.stringify(subpaths.map(specifier))}) {\n  const m = s.endsWith('package.json') ? await import(s, { with: { type: 'json' } }) : await import(s);\n  out[s] = Object.keys(m).length;\n}\nconst a = await import('enclavekit/attestation');\nconst n = await import('enclavekit/native');\nconsole.log(JSON.stringify({ out, verifyNitro: typeof a.verifyNitro, native: n.nativeStatus(), runJob: typeof (await import('enclavekit/host')).runJob }));\n`,
      );
      writeFileSync(
        join(app, 'cjs.cjs'),
        `const out = {};\nfor (const s of ${JSON.stringify(subpaths.map(specifier))}) out[s] = Object.keys(require(s)).length;\nconsole.log(JSON.stringify({ out, verifyNitro: typeof require('enclavekit/attestation').verifyNitro, version: require('enclavekit/package.json').version }));\n`,
      );
      const esm = await sh(process.execPath, ['esm.mjs'], { cwd: app });
      expect(esm.stderr).toBe('');
      const e = JSON.parse(esm.stdout) as { out: Record<string, number>; verifyNitro: string; native: { available: boolean; reason: string }; runJob: string };
      for (const s of subpaths) expect(e.out[specifier(s)], specifier(s)).toBeGreaterThan(0);
      expect(e).toMatchObject({ verifyNitro: 'function', runJob: 'function', native: { available: built } });
      const cjs = await sh(process.execPath, ['--no-warnings', 'cjs.cjs'], { cwd: app });
      expect(cjs.stderr).toBe('');
      const c = JSON.parse(cjs.stdout) as { out: Record<string, number>; verifyNitro: string; version: string };
      for (const s of subpaths) expect(c.out[specifier(s)], specifier(s)).toBeGreaterThan(0);
      expect(c).toMatchObject({ verifyNitro: 'function', version: PKG.version });

      // 4. The types resolve for a TypeScript dependent (NodeNext).
      writeFileSync(
        join(app, 'types.ts'),
        `import { verifyNitro, type VerifiedNitroDocument } from 'enclavekit/attestation';\nimport { verifyNitro as pure } from 'enclavekit/attestation/pure';\nimport { nativeStatus } from 'enclavekit/native';\nimport { Worker } from 'enclavekit/enclave';\nimport { runJob, type RunOutcome } from 'enclavekit/host';\nimport * as root from 'enclavekit';\nconst d: (b: Uint8Array) => VerifiedNitroDocument = (b) => verifyNitro(b);\nexport const all = [d, pure, nativeStatus, Worker, runJob, root.verifyNitro] as const;\nexport type O = RunOutcome;\n`,
      );
      writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: [] }, files: ['types.ts'] }));
      const tsc = await sh(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: app });
      expect(tsc.stdout + tsc.stderr).toBe('');
      expect(tsc.code).toBe(0);

      // 5. The bin, through npx: --version, and verify on a real document inside its window.
      const version = await sh('npx', ['--no-install', 'enclavekit', '--version'], { cwd: app });
      expect(version.stdout.trim()).toBe(PKG.version);
      const doc = join(ROOT, 'test', 'vectors', 'nitro', 'blocky-1.cose');
      const verify = await sh('npx', ['--no-install', 'enclavekit', 'verify', doc, '--at', '2024-09-07T15:00:00Z', '--json'], { cwd: app });
      expect(verify.code).toBe(0);
      expect(JSON.parse(verify.stdout)).toMatchObject({ valid: true, format: 'nitro', platform: 'nitro', claims: { moduleId: 'i-0a22e5c5f24d22174-enc0191cceb4289903f' } });

      // 6. The package's install script, run by npm as on install: a build that fails (no usable
      //    compiler) only warns and the package still works without the addon;
      //    ENCLAVEKIT_REQUIRE_NATIVE=1 makes it fatal; ENCLAVEKIT_SKIP_NATIVE=1 skips it.
      const broken = { CC: 'false', CXX: 'false', ENCLAVEKIT_REQUIRE_NATIVE: '', ENCLAVEKIT_SKIP_NATIVE: '' };
      const failed = await sh('npm', ['run', 'install'], { cwd: pkgDir, env: broken });
      expect(failed.code).toBe(0);
      expect(failed.stderr).toMatch(/enclavekit: the native addon did not build/);
      const without = await sh(process.execPath, ['-e', "import('enclavekit/native').then((n) => console.log(JSON.stringify(n.nativeStatus())))"], { cwd: app });
      expect(JSON.parse(without.stdout)).toMatchObject({ available: false });
      expect((await sh('npx', ['--no-install', 'enclavekit', 'verify', doc, '--at', '2024-09-07T15:00:00Z'], { cwd: app })).code).toBe(0);
      const required = await sh('npm', ['run', 'install'], { cwd: pkgDir, env: { ...broken, ENCLAVEKIT_REQUIRE_NATIVE: '1' } });
      expect(required.code).not.toBe(0);
      const skipped = await sh('npm', ['run', 'install'], { cwd: pkgDir, env: { ENCLAVEKIT_SKIP_NATIVE: '1', ENCLAVEKIT_REQUIRE_NATIVE: '1' } });
      expect(skipped.code).toBe(0);
      expect(skipped.stderr).toMatch(/ENCLAVEKIT_SKIP_NATIVE=1/);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
