#!/usr/bin/env node
// npm run build: compiles the server, its CLIs and its migrations to dist/ (tsc -p tsconfig.build.json,
// incremental) and records a hash of everything the build reads in dist/.build-hash.
// With --if-stale (npm start, migrate, token run it first) it builds only when that hash differs
// from the sources' hash now: content, not timestamps, so a stale dist is never served, and an
// up-to-date one costs a few milliseconds instead of a type-check.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const stampFile = join(dist, '.build-hash');
const sourceDirs = ['src', 'migrations'];
// The typed client's trusted documents are compiled into the server (src/graphql/trusted-documents.ts).
const configFiles = ['tsconfig.json', 'tsconfig.build.json', 'package.json', 'package-lock.json', 'client/generated/persisted-documents.json'];

function walk(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path, out);
    else out.push(path);
  }
  return out;
}

/** One hash over the names and contents of every input of the build (a deleted or added file changes it too). */
function inputsHash() {
  const files = [...sourceDirs.flatMap((d) => walk(join(root, d))), ...configFiles.map((f) => join(root, f))].filter((f) => existsSync(f));
  const hash = createHash('sha256');
  for (const file of files.map((f) => relative(root, f)).sort()) {
    hash.update(`${file}\0`);
    hash.update(readFileSync(join(root, file)));
    hash.update('\0');
  }
  return hash.digest('hex');
}

const ifStale = process.argv.includes('--if-stale');
const wanted = inputsHash();
if (ifStale && existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === wanted) process.exit(0);

if (ifStale) process.stderr.write('dist/ is missing or older than the sources: building (npm run build)\n');
rmSync(stampFile, { force: true });
// tsc's messages go to stderr: stdout stays clean for `npm run -s token`.
const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: ['ignore', 2, 2] });
if (tsc.status !== 0) {
  process.stderr.write('build failed: dist/ was not updated to the sources (see the errors above)\n');
  process.exit(tsc.status ?? 1);
}

// Outputs whose source is gone (a removed or renamed file) would otherwise linger in dist/.
for (const file of walk(dist)) {
  const rel = relative(dist, file);
  if (!/\.(js|d\.ts|js\.map)$/.test(rel)) continue;
  const source = rel.replace(/\.(js|d\.ts|js\.map)$/, '.ts');
  if (!existsSync(join(root, source))) rmSync(file);
}
writeFileSync(stampFile, `${wanted}\n`);
