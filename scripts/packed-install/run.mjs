// `npm run test:packed`: installs the packed tarballs into fresh apps outside the workspace and runs each app end to end against the fake.
//
// Each directory under fixtures/ (but common/) is one app: its package.json lists what a user would install
// from the registry, with every `@metered/*` dependency written as "packed" (replaced here by the tarball),
// and its `test` script is what proves the app works. common/ (the request plan and the expected totals)
// is copied beside the apps, so `../common/harness.cjs` resolves in the repository and in the temp dir alike.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT, packAll } from './pack.mjs';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const SHARED = 'common';
/** Apps installed and run at once: npm installs mostly wait on the network, so a third overlaps the two CPU-bound runs. */
const CONCURRENCY = Number(process.env.PACKED_INSTALL_CONCURRENCY ?? 3);
/** A hung app (a server or timer left open) fails instead of stalling CI. */
const STEP_TIMEOUT_MS = 180_000;
/** Lines of a failed step's output printed under its failure. */
const TAIL_LINES = 40;

/** Runs a command; resolves with its exit code (null when killed at the timeout) and its combined output. */
function exec(command, args, cwd) {
  return new Promise((resolve) => {
    // detached: its own process group, so a timeout kills npm *and* the app it started (which holds the pipes open).
    const child = spawn(command, args, { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false' } });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const timer = setTimeout(() => process.kill(-child.pid, 'SIGKILL'), STEP_TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** Copies a fixture into the temp dir and points its `@metered/*` dependencies at the tarballs. */
function prepare(name, appsDir, tarballs) {
  const dir = path.join(appsDir, name);
  fs.cpSync(path.join(FIXTURES, name), dir, { recursive: true });
  const manifestPath = path.join(dir, 'package.json');
  const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
  for (const [dependency, range] of Object.entries(manifest.dependencies ?? {})) {
    if (range !== 'packed') continue;
    if (!tarballs[dependency]) throw new Error(`${name}: no tarball for ${dependency}`);
    manifest.dependencies[dependency] = `file:${tarballs[dependency]}`;
  }
  fs.writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  return dir;
}

/**
 * Every `@metered/*` in the installed tree must be one of our tarballs, once: a registry copy (someone
 * else's package under that name) or a nested duplicate would make the run prove nothing.
 */
function installedFromTarballs(dir, tarballs) {
  const lock = JSON.parse(fs.readFileSync(path.join(dir, 'package-lock.json'), 'utf8'));
  const problems = [];
  for (const [location, entry] of Object.entries(lock.packages)) {
    const match = /(?:^|\/)node_modules\/(@metered\/[^/]+)$/.exec(location);
    if (!match) continue;
    if (location !== `node_modules/${match[1]}`) problems.push(`nested copy at ${location}`);
    const expected = tarballs[match[1]];
    if (!expected || !entry.resolved?.startsWith('file:') || path.resolve(dir, entry.resolved.slice(5)) !== expected) {
      problems.push(`${location} resolved from ${entry.resolved ?? 'nowhere'}, not the packed tarball`);
    }
  }
  return problems;
}

function tail(output) {
  return output.trimEnd().split('\n').slice(-TAIL_LINES).map((line) => `    ${line}`).join('\n');
}

async function runApp(name, appsDir, tarballs) {
  const started = performance.now();
  const seconds = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
  const dir = prepare(name, appsDir, tarballs);
  // --ignore-scripts: nothing in these apps needs an install script, and none may fetch a binary.
  const install = await exec('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--prefer-offline', '--loglevel=error'], dir);
  if (install.code !== 0) return { ok: false, line: `packed-install ${name}: FAILED at npm install (${seconds()})\n${tail(install.output)}` };
  const problems = installedFromTarballs(dir, tarballs);
  if (problems.length > 0) return { ok: false, line: `packed-install ${name}: FAILED, wrong @metered packages installed\n    ${problems.join('\n    ')}` };
  const test = await exec('npm', ['test', '--silent'], dir);
  if (test.code !== 0) {
    const why = test.code === null ? `killed after ${STEP_TIMEOUT_MS / 1000} s` : `exit ${test.code}`;
    return { ok: false, line: `packed-install ${name}: FAILED (${why}, ${seconds()})\n${tail(test.output)}` };
  }
  const said = test.output.trim().split('\n').pop();
  return { ok: true, line: `packed-install ${name}: ok (${seconds()}; ${said})` };
}

/** Runs `task` over `items`, at most `limit` at a time, printing each result as it lands. */
async function pool(items, limit, task) {
  const results = [];
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const item = items[next++];
      const result = await task(item).catch((error) => ({ ok: false, line: `packed-install ${item}: FAILED\n${tail(String(error?.stack ?? error))}` }));
      console.log(result.line);
      results.push(result);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

const started = performance.now();
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'metered-packed-install-'));
if (!path.relative(REPO_ROOT, root).startsWith('..')) throw new Error(`temp dir ${root} is inside the repository; set TMPDIR elsewhere`);
const apps = fs.readdirSync(FIXTURES).filter((name) => name !== SHARED && !name.startsWith('.')).sort();
const only = process.argv.slice(2);
const selected = only.length > 0 ? apps.filter((name) => only.includes(name)) : apps;
let failed = 0;
try {
  const tarballs = await packAll(path.join(root, 'tarballs'));
  console.log(`packed-install: packed ${Object.keys(tarballs).length} packages in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const appsDir = path.join(root, 'apps');
  fs.cpSync(path.join(FIXTURES, SHARED), path.join(appsDir, SHARED), { recursive: true });
  const results = await pool(selected, CONCURRENCY, (name) => runApp(name, appsDir, tarballs));
  failed = results.filter((result) => !result.ok).length;
  console.log(`packed-install: ${results.length - failed} passed, ${failed} failed in ${((performance.now() - started) / 1000).toFixed(1)} s`);
} finally {
  // A failed run keeps its apps for a look (npm install + npm test in the app reproduce it).
  if (failed === 0 && !process.env.PACKED_INSTALL_KEEP) fs.rmSync(root, { recursive: true, force: true });
  else console.log(`packed-install: apps kept in ${root}`);
}
if (failed > 0 || selected.length === 0) process.exitCode = 1;
