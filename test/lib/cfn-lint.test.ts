import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { synthStack } from '../helpers/stack';

// cfn-lint exit code is a bit mask: 2 = error, 4 = warning, 8 = informational.
const CFN_LINT_ERROR = 2;

describe('cfn-lint', () => {
  test('finds no error in the synthesized template', () => {
    const { template } = synthStack();
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cfn-lint-')), 'template.json');
    fs.writeFileSync(file, JSON.stringify(template.toJSON(), null, 1));
    const run = spawnSync('cfn-lint', ['--format', 'parseable', file], { encoding: 'utf-8' });
    if (run.error) throw new Error(`cfn-lint could not run (${run.error.message}): install it with pip install cfn-lint`);
    const errors = run.stdout.split('\n').filter((l) => /:E\d{4}:/.test(l) || /\[E\d{4}\]/.test(l));
    expect(errors).toEqual([]);
    expect(run.status! & CFN_LINT_ERROR).toBe(0);
  });
});
