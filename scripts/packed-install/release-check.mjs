// `npm run release-check`: packs every package and runs publint and arethetypeswrong over the tarballs, as the registry will serve them.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, packAll } from './pack.mjs';

const run = promisify(execFile);

/**
 * publint --strict: its warnings fail too. attw runs with its default profile (every resolution mode:
 * node10, node16 from CJS and from ESM, bundler), which our CommonJS packages meet without flags —
 * node10 through `main`/`types`, the others through `exports`.
 */
const CHECKS = [
  { tool: 'publint', args: (tarball) => ['publint', 'run', '--strict', tarball] },
  { tool: 'attw', args: (tarball) => ['attw', '--format', 'ascii', tarball] },
];

async function check(name, tarball, { tool, args }) {
  const started = performance.now();
  try {
    await run(path.join(REPO_ROOT, 'node_modules', '.bin', args(tarball)[0]), args(tarball).slice(1), { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024 });
    return { ok: true, line: `release-check ${tool} ${name}: ok (${Math.round(performance.now() - started)} ms)` };
  } catch (error) {
    const output = `${error.stdout ?? ''}${error.stderr ?? ''}`.trim() || String(error);
    return { ok: false, line: `release-check ${tool} ${name}: FAILED\n${output}` };
  }
}

const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'metered-release-check-'));
try {
  const tarballs = await packAll(temp);
  const results = await Promise.all(Object.entries(tarballs).flatMap(([name, tarball]) => CHECKS.map((spec) => check(name, tarball, spec))));
  for (const result of results) console.log(result.line);
  const failed = results.filter((result) => !result.ok).length;
  console.log(`release-check: ${results.length - failed} passed, ${failed} failed`);
  if (failed > 0) process.exitCode = 1;
} finally {
  fs.rmSync(temp, { recursive: true, force: true });
}
