import { appendFileSync, cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DOCUMENTS_DIR } from '../../lib/documents';
import { formatFinding, lintDocumentScripts, lintPowerShellFile, lintShellFile } from '../../scripts/lint-scripts';

describe('lint-scripts', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'lint-scripts-test-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('finds nothing in the document scripts, standalone and inlined', () => {
    const findings = lintDocumentScripts();
    expect(findings.map(formatFinding)).toEqual([]);
  });

  test('lints the verify document too, standalone and inlined', () => {
    // Given a copy of the documents whose verify scripts are broken
    const docs = path.join(dir, 'documents');
    cpSync(DOCUMENTS_DIR, docs, { recursive: true });
    appendFileSync(path.join(docs, 'verify.sh'), 'rm -rf $PP_WORK/*\n');
    appendFileSync(path.join(docs, 'verify.ps1'), 'if ($x -eq 1 {\n');
    // When linted, both scripts are reported, on their own and as inlined into the document
    const files = new Set(lintDocumentScripts(docs).map((f) => f.file));
    expect([...files].filter((f) => f.includes('verify')).sort()).toEqual([
      path.relative(process.cwd(), path.join(docs, 'verify.ps1')),
      path.relative(process.cwd(), path.join(docs, 'verify.sh')),
      'verify (inlined linux)',
      'verify (inlined windows)',
    ].sort());
  });

  test('reports a broken shell script with its line', () => {
    const file = path.join(dir, 'broken.sh');
    writeFileSync(file, '#!/usr/bin/env bash\necho ok\nrm -rf $TARGET/*\nif [ -n "$x" ]; then\n  echo missing fi\n');
    const findings = lintShellFile(file, 'broken.sh');
    expect(findings.length).toBeGreaterThan(0);
    expect(findings.map(formatFinding).join('\n')).toMatch(/^broken\.sh:\d+: SC\d+ /m);
  });

  test('reports a PowerShell script that does not parse, with its line', () => {
    const file = path.join(dir, 'broken.ps1');
    writeFileSync(file, "$ok = 1\nWrite-Output 'fine'\nif ($ok -eq 1 {\n  Write-Output 'never closed'\n");
    const findings = lintPowerShellFile(file, 'broken.ps1');
    expect(findings.length).toBeGreaterThan(0);
    expect(findings.every((f) => f.file === 'broken.ps1' && (f.rule === 'ERROR' || f.rule === 'MISSING'))).toBe(true);
    expect(findings.some((f) => f.line >= 3)).toBe(true);
  });

  test('accepts a well-formed PowerShell script', () => {
    const file = path.join(dir, 'fine.ps1');
    writeFileSync(file, "try {\n  $x = @{ a = 1 }\n  Write-Output \"$($x.a)\"\n}\nfinally {\n  Write-Output 'done'\n}\n");
    expect(lintPowerShellFile(file)).toEqual([]);
  });
});
