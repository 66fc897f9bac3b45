/**
 * Lints the document scripts: shellcheck on every .sh, a PowerShell grammar (tree-sitter) on every
 * .ps1, each standalone and as the final inlined script (common prelude + own) that really runs.
 * Usage: npx tsx scripts/lint-scripts.ts [ssm-documents dir]; exits 1 on any finding.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import Parser from 'tree-sitter';
import { DOCUMENT_NAMES, DOCUMENTS_DIR, documentScript } from '../lib/documents';

export interface Finding {
  /** File, or '<document> (inlined linux|windows)' for a final script. */
  readonly file: string;
  readonly line: number;
  readonly rule: string;
  readonly message: string;
}

interface ShellcheckComment {
  line: number;
  code: number;
  level: string;
  message: string;
}

/**
 * A document's own script uses variables that only the prelude reads (the marker detail), so
 * SC2034 (assigned but unused) is off for own scripts alone; the inlined scripts get every rule.
 */
const OWN_SCRIPT_EXCLUDES = ['SC2034'];

/** shellcheck on one file; `label` names it in the findings. */
export function lintShellFile(file: string, label: string = file, exclude: readonly string[] = []): Finding[] {
  const args = ['--format=json1', '--shell=bash', '--severity=style'];
  if (exclude.length > 0) args.push(`--exclude=${exclude.join(',')}`);
  const result = spawnSync('shellcheck', [...args, file], { encoding: 'utf8' });
  if (result.error) throw new Error(`shellcheck could not run (apt-get install -y shellcheck): ${result.error.message}`);
  if (result.status !== 0 && result.status !== 1) throw new Error(`shellcheck failed on ${label}: ${result.stderr}`);
  const comments = (JSON.parse(result.stdout || '{"comments":[]}') as { comments: ShellcheckComment[] }).comments;
  return comments.map((c) => ({ file: label, line: c.line, rule: `SC${c.code}`, message: `${c.level}: ${c.message}` }));
}

/** shellcheck on script text (written to a temp file). */
export function lintShellText(text: string, label: string, exclude: readonly string[] = []): Finding[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'lint-sh-'));
  try {
    const file = path.join(dir, 'script.sh');
    writeFileSync(file, text);
    return lintShellFile(file, label, exclude);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let powerShellParser: Parser | undefined;

function parser(): Parser {
  if (!powerShellParser) {
    // The package's own entry is an ES module with top-level await; the native grammar it wraps
    // loads the same way from CommonJS through node-gyp-build.
    const root = path.dirname(require.resolve('tree-sitter-powershell/package.json'));
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const language = require('node-gyp-build')(root) as Parser.Language & { nodeTypeInfo?: unknown };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    language.nodeTypeInfo = require(path.join(root, 'src', 'node-types.json'));
    powerShellParser = new Parser();
    powerShellParser.setLanguage(language);
  }
  return powerShellParser;
}

/** Every ERROR and MISSING node of the PowerShell parse tree. */
export function lintPowerShellText(text: string, label: string): Finding[] {
  // The default 32 KiB input buffer cuts longer scripts; give the whole text at once.
  const tree = parser().parse(text, undefined, { bufferSize: Math.max(32 * 1024, Buffer.byteLength(text) * 2) });
  const findings: Finding[] = [];
  const visit = (node: Parser.SyntaxNode): void => {
    if (node.isMissing) {
      findings.push({ file: label, line: node.startPosition.row + 1, rule: 'MISSING', message: `missing ${node.type}` });
    } else if (node.type === 'ERROR') {
      const excerpt = node.text.split('\n')[0].slice(0, 80);
      findings.push({ file: label, line: node.startPosition.row + 1, rule: 'ERROR', message: `cannot parse: ${excerpt}` });
    }
    if (node.hasError || node.isMissing) for (const child of node.children) visit(child);
  };
  visit(tree.rootNode);
  return findings;
}

export function lintPowerShellFile(file: string, label: string = file): Finding[] {
  return lintPowerShellText(readFileSync(file, 'utf8'), label);
}

/** Lints every script of a documents directory, standalone and inlined. */
export function lintDocumentScripts(dir: string = DOCUMENTS_DIR, documents: readonly string[] = DOCUMENT_NAMES): Finding[] {
  const findings: Finding[] = [];
  const rel = (file: string): string => path.relative(process.cwd(), file) || file;
  for (const sub of [dir, path.join(dir, 'lib')]) {
    for (const entry of readdirSync(sub).sort()) {
      const file = path.join(sub, entry);
      if (entry.endsWith('.sh')) findings.push(...lintShellFile(file, rel(file), sub === dir ? OWN_SCRIPT_EXCLUDES : []));
      if (entry.endsWith('.ps1')) findings.push(...lintPowerShellFile(file, rel(file)));
    }
  }
  for (const name of documents) {
    findings.push(...lintShellText(documentScript(name, 'linux', dir), `${name} (inlined linux)`));
    findings.push(...lintPowerShellText(documentScript(name, 'windows', dir), `${name} (inlined windows)`));
  }
  return findings;
}

export function formatFinding(f: Finding): string {
  return `${f.file}:${f.line}: ${f.rule} ${f.message}`;
}

if (require.main === module) {
  const findings = lintDocumentScripts(process.argv[2] ? path.resolve(process.argv[2]) : DOCUMENTS_DIR);
  for (const f of findings) process.stderr.write(`${formatFinding(f)}\n`);
  process.stdout.write(`lint-scripts: ${findings.length} finding(s)\n`);
  process.exitCode = findings.length > 0 ? 1 : 0;
}
