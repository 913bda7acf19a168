// Packs every published package (its prepack runs a clean build) and checks each tarball carries what an installed app needs.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Dependency order: each package's prepack compiles against the dist/ of those before it. */
export const PACKAGES = ['core', 'express', 'nestjs', 'testing', 'redis'];
/** Files every tarball must contain; `spec/` is what @metered/testing's SPEC_PATH resolves to once installed. */
const REQUIRED_FILES = {
  common: ['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts'],
  testing: ['spec/stripe-v2-meter-events.openapi.json', 'spec/README.md'],
};

const run = promisify(execFile);

/**
 * `npm pack` of every package into `destination`; resolves with `{ '@metered/core': '/abs/metered-core-0.1.0.tgz', … }`.
 * Throws when a tarball lacks a required file, refers to a map it does not ship, ships a map without its
 * sources, or carries a LICENSE that differs from the root's.
 */
export async function packAll(destination) {
  fs.mkdirSync(destination, { recursive: true });
  const args = ['pack', '--json', '--pack-destination', destination, ...PACKAGES.flatMap((name) => ['--workspace', `packages/${name}`])];
  const { stdout } = await run('npm', args, { cwd: REPO_ROOT, maxBuffer: 64 * 1024 * 1024 });
  // Lifecycle output (the prepack build) may precede the JSON report, which starts on a line of its own.
  const start = stdout.search(/^\[/m);
  if (start === -1) throw new Error(`npm pack printed no JSON report:\n${stdout}`);
  const report = JSON.parse(stdout.slice(start));
  const license = fs.readFileSync(path.join(REPO_ROOT, 'LICENSE'), 'utf8');
  const problems = [];
  const tarballs = {};
  for (const entry of report) {
    const files = new Set(entry.files.map((file) => file.path));
    const short = entry.name.replace('@metered/', '');
    for (const required of [...REQUIRED_FILES.common, ...(REQUIRED_FILES[short] ?? [])]) {
      if (!files.has(required)) problems.push(`${entry.name}: ${required} is missing from the tarball`);
    }
    if ([...files].some((file) => file.startsWith('src/') || file.startsWith('test/'))) problems.push(`${entry.name}: ships src/ or test/`);
    const packageDir = path.join(REPO_ROOT, 'packages', short);
    if (fs.existsSync(path.join(packageDir, 'LICENSE')) && fs.readFileSync(path.join(packageDir, 'LICENSE'), 'utf8') !== license) {
      problems.push(`${entry.name}: LICENSE differs from the repository's`);
    }
    // A map comment must not point at a file the tarball lacks, and a shipped map must carry its sources (src/ is not shipped).
    for (const script of [...files].filter((file) => file.endsWith('.js'))) {
      const comment = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(fs.readFileSync(path.join(packageDir, script), 'utf8'));
      const map = comment && !comment[1].startsWith('data:') ? path.posix.join(path.posix.dirname(script), comment[1]) : undefined;
      if (map !== undefined && !files.has(map)) problems.push(`${entry.name}: ${script} points at ${map}, which is not shipped`);
    }
    for (const map of [...files].filter((file) => file.endsWith('.map'))) {
      const parsed = JSON.parse(fs.readFileSync(path.join(packageDir, map), 'utf8'));
      if (!Array.isArray(parsed.sourcesContent) || parsed.sourcesContent.length !== parsed.sources.length) {
        problems.push(`${entry.name}: ${map} points at sources it does not carry`);
      }
    }
    tarballs[entry.name] = path.join(destination, entry.filename);
  }
  if (report.length !== PACKAGES.length) problems.push(`npm pack reported ${report.length} packages, expected ${PACKAGES.length}`);
  if (problems.length > 0) throw new Error(`packed tarballs are not releasable:\n  ${problems.join('\n  ')}`);
  return tarballs;
}
