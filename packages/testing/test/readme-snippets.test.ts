// Every ```ts/```js block of the READMEs typechecks against the workspace sources, so a quick start never rots.
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const ROOT = path.resolve(__dirname, '../../..');
// Written on the line just before a block it exempts; the reason is required and every use is listed below.
const OPT_OUT = /^<!--\s*snippet:\s*not-compiled\s+(.+?)\s*-->$/;
const COMPILED_LANGS = new Set(['ts', 'typescript', 'js', 'javascript']);

interface Snippet {
  /** README path relative to the repository root. */
  readme: string;
  /** 1-based line of the first line of code (the one after the opening fence). */
  line: number;
  lang: string;
  code: string;
  optOut: string | undefined;
}

function readmes(): string[] {
  const found = ['README.md'];
  for (const group of ['packages', 'examples']) {
    for (const name of fs.readdirSync(path.join(ROOT, group)).sort()) {
      const readme = path.join(group, name, 'README.md');
      if (fs.existsSync(path.join(ROOT, readme))) found.push(readme);
    }
  }
  return found;
}

/** The fenced code blocks of a Markdown text, with the opt-out comment (if any) just above each. */
export function extractSnippets(readme: string, text: string): Snippet[] {
  const lines = text.split('\n');
  const out: Snippet[] = [];
  for (let i = 0; i < lines.length; i += 1) {
    const open = /^```(\w*)\s*$/.exec(lines[i]!);
    if (open === null) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end += 1;
    const lang = open[1]!.toLowerCase();
    const optOut = i > 0 ? OPT_OUT.exec(lines[i - 1]!.trim())?.[1] : undefined;
    if (COMPILED_LANGS.has(lang)) out.push({ readme, line: start + 1, lang, code: lines.slice(start, end).join('\n'), optOut });
    i = end;
  }
  return out;
}

/** The repository's compiler options, with `@metered/*` mapped to the sources as jest's moduleNameMapper does. */
function compilerOptions(): ts.CompilerOptions {
  const configPath = path.join(ROOT, 'tsconfig.json');
  const parsed = ts.parseJsonConfigFileContent(ts.readConfigFile(configPath, (file) => ts.sys.readFile(file)).config, ts.sys, ROOT);
  return { ...parsed.options, noEmit: true, allowJs: true, checkJs: true, types: ['node'] };
}

/** Typechecks snippets as one program (each its own module); returns `README:line: message` for every error. */
export function snippetProblems(snippets: readonly Snippet[]): string[] {
  const options = compilerOptions();
  const virtual = new Map<string, Snippet>();
  snippets.forEach((snippet, index) => {
    // ES modules, as a reader's app would be: top-level await works, as in the quick starts.
    const ext = snippet.lang.startsWith('j') ? 'mjs' : 'mts';
    // Beside the repository's own files, so module resolution finds its node_modules.
    virtual.set(path.join(ROOT, '.readme-snippets', `${index}-${snippet.readme.replace(/[\\/]/g, '_')}-${snippet.line}.${ext}`), snippet);
  });
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  // A snippet with no import or export is still a module: snippets must not see each other's names.
  const source = (snippet: Snippet): string => (/^\s*(import|export)\s/m.test(snippet.code) ? snippet.code : `${snippet.code}\nexport {};`);
  host.readFile = (file) => (virtual.has(file) ? source(virtual.get(file)!) : readFile(file));
  host.fileExists = (file) => virtual.has(file) || fileExists(file);
  host.getSourceFile = (file, languageVersion, onError, create) => {
    const snippet = virtual.get(file);
    return snippet === undefined ? getSourceFile(file, languageVersion, onError, create) : ts.createSourceFile(file, source(snippet), languageVersion, true);
  };
  const program = ts.createProgram([...virtual.keys()], options, host);
  const problems: string[] = [];
  for (const diagnostic of [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics(), ...ts.getPreEmitDiagnostics(program)]) {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
    const snippet = diagnostic.file === undefined ? undefined : virtual.get(diagnostic.file.fileName);
    if (diagnostic.file === undefined || snippet === undefined) {
      // An error outside every snippet (in a package's sources) is not a README's; typecheck reports it.
      if (diagnostic.file === undefined) problems.push(`(options): ${message}`);
      continue;
    }
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
    problems.push(`${snippet.readme}:${snippet.line + line}: TS${diagnostic.code} ${message}`);
  }
  return [...new Set(problems)];
}

const all = readmes().flatMap((readme) => extractSnippets(readme, fs.readFileSync(path.join(ROOT, readme), 'utf8')));

describe('README code snippets', () => {
  it('finds the snippets of every README (root, packages, examples)', () => {
    const perReadme = new Set(all.map((snippet) => snippet.readme));
    expect([...perReadme].sort()).toEqual(expect.arrayContaining(['README.md', 'packages/express/README.md', 'packages/nestjs/README.md', 'packages/testing/README.md', 'packages/core/README.md']));
  });

  it('every ts/js snippet typechecks against the workspace sources', () => {
    const problems = snippetProblems(all.filter((snippet) => snippet.optOut === undefined));
    expect(problems).toEqual([]);
  }, 120_000);

  it('opts out of compiling only the snippets listed here, each with its reason', () => {
    // Adding an opt-out means adding it here too, so each one is a decision someone reviewed.
    expect(all.filter((snippet) => snippet.optOut !== undefined).map((snippet) => `${snippet.readme}: ${snippet.optOut}`)).toEqual([]);
  });

  it('names the README and line of a broken snippet', () => {
    const text = ['# Example', '', '```ts', "import { meterUsage } from '@metered/express';", '', "meterUsage({ reporter: { apiKey: 42 } });", '```', ''].join('\n');
    const problems = snippetProblems(extractSnippets('packages/example/README.md', text));
    expect(problems).toEqual([expect.stringMatching(/^packages\/example\/README\.md:6: TS2322 /)]);
  }, 120_000);

  it('reads an opt-out only from the line just before a block, and shell blocks not at all', () => {
    const text = ['<!-- snippet: not-compiled needs a live Stripe account -->', '```ts', 'x', '```', '```sh', 'npm test', '```', '```ts', 'y', '```'].join('\n');
    expect(extractSnippets('R.md', text).map((s) => [s.line, s.code, s.optOut])).toEqual([
      [3, 'x', 'needs a live Stripe account'],
      [9, 'y', undefined],
    ]);
  });
});
