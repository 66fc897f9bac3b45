/**
 * Runs the final inlined Linux script of each document under bash, in a sandbox whose PATH holds
 * only shims (aws, curl, dnf, rpm, apt-get, ...) and links to a few core utilities: the host's
 * real package managers are not on PATH, so a script can never reach them.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parse } from 'csv-parse/sync';
import { documentScript, interpolateParameters } from '../../lib/documents';
import { StageDefinition, STAGES, VERIFY_STAGE } from '../../lib/stages';
import { COMMON_DOCUMENT_PARAMETERS, documentParameters } from '../../lambda/shared/document-parameters';
import { compareKey, failedKey, inventoryKey, markerKey } from '../../lambda/shared/keys';
import { StageSpec } from '../../lambda/shared/types';
import { testConfig } from '../helpers/fixtures';

const RUN_ID = 'run-2026-11-28T21-00';
const BUCKET = 'pp-test-bucket';
const INSTANCE = 'i-0123456789abcdef0';
const CORE_UTILS = [
  'bash', 'cat', 'date', 'mktemp', 'rm', 'mkdir', 'cp', 'mv', 'awk', 'sed', 'grep', 'sort', 'comm', 'tr',
  'cut', 'head', 'tail', 'wc', 'stat', 'uname', 'dirname', 'basename', 'chmod', 'ls', 'env', 'touch',
];
const PACKAGE_MANAGERS = ['dnf', 'yum', 'apt-get', 'apt', 'apt-cache', 'dpkg', 'dpkg-query', 'rpm', 'zypper', 'snap', 'needs-restarting'];

const config = testConfig({
  targetTags: {}, batchConcurrency: 1, maxConcurrency: '10', maxErrors: '0', pollIntervalSeconds: 30,
  powerOnTimeoutSeconds: 600, snapshotTimeoutSeconds: 600, snapshotRetentionDays: 7,
});

const SHIMS: Record<string, string> = {
  // s3 cp: uploads land in $FAKE_S3/<bucket>/<key>, downloads come from there; every call is logged.
  aws: `#!/usr/bin/env bash
printf '%s\\n' "$*" >>"$FAKE_STATE/aws.log"
[ "$1 $2" = "s3 cp" ] || { echo "aws shim: unsupported $*" >&2; exit 2; }
src="$3" dst="$4"
case "$*" in *"--region eu-west-1"*) ;; *) echo "aws shim: no --region" >&2; exit 2 ;; esac
if [[ "$src" == s3://* ]]; then
  [ -f "$FAKE_S3/\${src#s3://}" ] || { echo "download failed: 404" >&2; exit 1; }
  cp "$FAKE_S3/\${src#s3://}" "$dst"
else
  mkdir -p "$(dirname "$FAKE_S3/\${dst#s3://}")"
  cp "$src" "$FAKE_S3/\${dst#s3://}"
  printf '%s\\n' "\${dst#s3://}" >>"$FAKE_STATE/uploads.log"
fi
`,
  // IMDSv2: a token, then tags from $FAKE_STATE/tags/<key> (22 = curl's HTTP error exit).
  curl: `#!/usr/bin/env bash
url="\${*: -1}"
[ -e "$FAKE_STATE/imds-off" ] && exit 7
case "$url" in
  */latest/api/token) printf 'token' ;;
  */latest/meta-data/tags/instance/*) f="$FAKE_STATE/tags/\${url##*/}"; [ -f "$f" ] || exit 22; cat "$f" ;;
  */latest/meta-data/instance-id) printf '${INSTANCE}' ;;
  http://localhost*|http://127.0.0.1*)
    printf '%s\\n' "$*" >>"$FAKE_STATE/curl.log"
    f="$FAKE_STATE/http/\${url//[^A-Za-z0-9]/_}"; [ -f "$f" ] || { printf '000'; exit 7; }; cat "$f" ;;
  *) exit 22 ;;
esac
`,
  hostname: `#!/usr/bin/env bash
[ "$1" = "-d" ] && printf 'corp.example.com\\n'
exit 0
`,
  rpm: `#!/usr/bin/env bash
case "$1" in
  -qa) cat "$FAKE_STATE/rpm.tsv" ;;
  -q) [ -f "$FAKE_STATE/agent-version" ] || exit 1; if [ "$2" = "--queryformat" ]; then cat "$FAKE_STATE/agent-version"; fi ;;
  *) exit 2 ;;
esac
`,
  // dnf: updateinfo from $FAKE_STATE/security.txt; an upgrade fails when install-fails exists,
  // otherwise it installs: security.txt keeps only stuck.txt and rpm.tsv becomes rpm-after.tsv.
  dnf: `#!/usr/bin/env bash
printf '%s\\n' "$*" >>"$FAKE_STATE/dnf.log"
case "$*" in
  *"updateinfo list --security --available"*) cat "$FAKE_STATE/security.txt" 2>/dev/null ;;
  *"--security upgrade"*)
    [ -e "$FAKE_STATE/install-fails" ] && { echo "Error: Transaction test error" >&2; exit 1; }
    cat "$FAKE_STATE/stuck.txt" >"$FAKE_STATE/security.txt" 2>/dev/null || : >"$FAKE_STATE/security.txt"
    [ -f "$FAKE_STATE/rpm-after.tsv" ] && cp "$FAKE_STATE/rpm-after.tsv" "$FAKE_STATE/rpm.tsv"
    exit 0 ;;
  *"list --available amazon-ssm-agent"*) exit 0 ;;
  *"update amazon-ssm-agent"*)
    [ -e "$FAKE_STATE/install-fails" ] && exit 1
    printf '3.3.1000.0' >"$FAKE_STATE/agent-version"; exit 0 ;;
  *) echo "dnf shim: unsupported $*" >&2; exit 2 ;;
esac
`,
  // apt-get: the simulated dist-upgrade lists $FAKE_STATE/apt-sim.txt until an install succeeds.
  'apt-get': `#!/usr/bin/env bash
printf '%s\\n' "$*" >>"$FAKE_STATE/apt.log"
case "$*" in
  *" update") exit 0 ;;
  *"-s "*"dist-upgrade") cat "$FAKE_STATE/apt-sim.txt" 2>/dev/null; exit 0 ;;
  *"--only-upgrade "*"install "*) [ -e "$FAKE_STATE/install-fails" ] && exit 100; : >"$FAKE_STATE/apt-sim.txt"; exit 0 ;;
  *) echo "apt-get shim: unsupported $*" >&2; exit 2 ;;
esac
`,
  // systemctl is-active: the state from $FAKE_STATE/units/<unit> (default inactive), exit 0 only when active.
  systemctl: `#!/usr/bin/env bash
printf '%s\\n' "$*" >>"$FAKE_STATE/systemctl.log"
[ "$1" = "is-active" ] || { echo "systemctl shim: unsupported $*" >&2; exit 2; }
state=inactive
[ -f "$FAKE_STATE/units/$2" ] && state="$(cat "$FAKE_STATE/units/$2")"
printf '%s\\n' "$state"
[ "$state" = active ]
`,
  'needs-restarting': `#!/usr/bin/env bash
[ -e "$FAKE_STATE/reboot-needed" ] && exit 1
exit 0
`,
};

interface Sandbox {
  root: string;
  state: string;
  s3: string;
  bin: string;
}

function makeSandbox(options: { python?: boolean; managers?: string[] } = {}): Sandbox {
  const root = mkdtempSync(path.join(tmpdir(), 'pp-linux-scripts-'));
  const sb = { root, state: path.join(root, 'state'), s3: path.join(root, 's3'), bin: path.join(root, 'bin') };
  for (const d of [sb.state, sb.s3, sb.bin, path.join(sb.state, 'tags'), path.join(root, 'tmp')]) mkdirSync(d, { recursive: true });
  for (const util of options.python ? [...CORE_UTILS, 'python3'] : CORE_UTILS) {
    // python3 may be a version-manager shim: link the interpreter itself.
    const lookup = util === 'python3' ? "python3 -c 'import sys; print(sys.executable)'" : `command -v ${util}`;
    const found = spawnSync('bash', ['-c', lookup], { encoding: 'utf8' }).stdout.trim();
    if (!found) throw new Error(`core utility ${util} not found`);
    symlinkSync(found, path.join(sb.bin, util));
  }
  const managers = options.managers ?? ['dnf', 'rpm', 'needs-restarting'];
  for (const [name, body] of Object.entries(SHIMS)) {
    if (PACKAGE_MANAGERS.includes(name) && !managers.includes(name)) continue;
    writeFileSync(path.join(sb.bin, name), body);
    chmodSync(path.join(sb.bin, name), 0o755);
  }
  return sb;
}

function stageSpec(stageId: string): StageSpec {
  const s = [...STAGES, VERIFY_STAGE].find((x) => x.id === stageId)!;
  return { id: s.id, title: s.title, documentName: s.document, parameters: { ...s.parameters }, prefixes: { ...s.prefixes } };
}

/** Runs a stage's final Linux script as the agent would: SSM_<Name> variables, or pasted values. */
function runStage(sb: Sandbox, stageId: string, extra: Record<string, string> = {}): { status: number; stderr: string } {
  const stage: StageDefinition = [...STAGES, VERIFY_STAGE].find((x) => x.id === stageId)!;
  const params = documentParameters(RUN_ID, BUCKET, config, stageSpec(stageId), extra);
  const values = Object.fromEntries(Object.entries(params).map(([k, [v]]) => [k, v]));
  let script = documentScript(stage.document, 'linux');
  if (stage.document === 'agent-update') script = interpolateParameters(script, values);
  const file = path.join(sb.root, `${stageId}.sh`);
  writeFileSync(file, script);
  const env: Record<string, string> = {
    PATH: sb.bin,
    HOME: sb.root,
    TMPDIR: path.join(sb.root, 'tmp'),
    LANG: 'C',
    AWS_SSM_INSTANCE_ID: INSTANCE,
    FAKE_STATE: sb.state,
    FAKE_S3: sb.s3,
    PP_REBOOT_REQUIRED_FILE: path.join(sb.state, 'reboot-required'),
    PP_PROC_STAT: path.join(sb.state, 'proc-stat'),
  };
  if (stage.document !== 'agent-update') for (const [k, v] of Object.entries(values)) env[`SSM_${k}`] = v;
  const result = spawnSync(path.join(sb.bin, 'bash'), [file], { env, encoding: 'utf8', timeout: 60000 });
  return { status: result.status ?? -1, stderr: result.stderr };
}

const s3Text = (sb: Sandbox, key: string): string => readFileSync(path.join(sb.s3, BUCKET, key), 'utf8');
const csvRows = (text: string): Record<string, string>[] => parse(text, { columns: true }) as Record<string, string>[];
const marker = (sb: Sandbox, stage: string): Record<string, string> => JSON.parse(s3Text(sb, markerKey(RUN_ID, stage, INSTANCE)));
const uploads = (sb: Sandbox): string[] =>
  readFileSync(path.join(sb.state, 'uploads.log'), 'utf8').trim().split('\n').map((line) => line.replace(`${BUCKET}/`, ''));

const RPM_PRE = ['bash\t0:5.2.15-3.amzn2023.x86_64\t1700000000', 'openssl-libs\t1:3.0.8-1.amzn2023.0.9.x86_64\t1700000100', 'curl-minimal\t0:8.3.0-1.amzn2023.0.1.x86_64\t1700000200'].join('\n') + '\n';
const RPM_POST = ['bash\t0:5.2.15-3.amzn2023.x86_64\t1700000000', 'openssl-libs\t1:3.0.8-1.amzn2023.0.12.x86_64\t1764360000', 'curl-minimal\t0:8.3.0-1.amzn2023.0.1.x86_64\t1700000200', 'kernel-livepatch-6.1\t0:1.0-0.amzn2023.x86_64\t1764360100'].join('\n') + '\n';
const SECURITY = 'ALAS2023-2025-001 Important/Sec. openssl-libs-1:3.0.8-1.amzn2023.0.12.x86_64\nALAS2023-2025-002 Critical/Sec. kernel-livepatch-6.1-1.0-0.amzn2023.x86_64\n';

describe('Linux document scripts', () => {
  const sandboxes: Sandbox[] = [];
  const sandbox = (options?: Parameters<typeof makeSandbox>[0]): Sandbox => {
    const sb = makeSandbox(options);
    sandboxes.push(sb);
    return sb;
  };
  afterAll(() => sandboxes.forEach((sb) => rmSync(sb.root, { recursive: true, force: true })));

  test('the sandbox PATH has no package manager but the shims', () => {
    const sb = sandbox({ managers: [] });
    for (const pm of PACKAGE_MANAGERS) {
      const r = spawnSync(path.join(sb.bin, 'bash'), ['-c', `command -v ${pm}`], { env: { PATH: sb.bin }, encoding: 'utf8' });
      expect([pm, r.stdout.trim()]).toEqual([pm, '']);
    }
  });

  test('inventory writes the exact CSV with real rows, then the marker, last', () => {
    // Given an rpm system whose instance has an Owner tag but no Application tag
    const sb = sandbox();
    writeFileSync(path.join(sb.state, 'rpm.tsv'), RPM_PRE);
    writeFileSync(path.join(sb.state, 'tags', 'Owner'), 'Jane "JD" Doe, Ops');
    // When pre-inventory runs
    const r = runStage(sb, 'pre-inventory');
    // Then
    expect(r.status).toBe(0);
    const csv = s3Text(sb, inventoryKey(RUN_ID, 'pre', INSTANCE));
    expect(csv.split('\n')[0]).toBe('instance_id,owner,domain,application,name,version,installed_on');
    expect(csvRows(csv)).toEqual([
      { instance_id: INSTANCE, owner: 'Jane "JD" Doe, Ops', domain: 'corp.example.com', application: '', name: 'bash', version: '5.2.15-3.amzn2023.x86_64', installed_on: '2023-11-14T22:13:20Z' },
      { instance_id: INSTANCE, owner: 'Jane "JD" Doe, Ops', domain: 'corp.example.com', application: '', name: 'curl-minimal', version: '8.3.0-1.amzn2023.0.1.x86_64', installed_on: '2023-11-14T22:16:40Z' },
      { instance_id: INSTANCE, owner: 'Jane "JD" Doe, Ops', domain: 'corp.example.com', application: '', name: 'openssl-libs', version: '1:3.0.8-1.amzn2023.0.9.x86_64', installed_on: '2023-11-14T22:15:00Z' },
    ]);
    expect(uploads(sb)).toEqual([inventoryKey(RUN_ID, 'pre', INSTANCE), markerKey(RUN_ID, 'pre-inventory', INSTANCE)]);
    const m = marker(sb, 'pre-inventory');
    expect(m).toMatchObject({ runId: RUN_ID, stage: 'pre-inventory', instanceId: INSTANCE, status: 'Success', detail: 'pre inventory: 3 packages from rpm' });
    expect(Object.keys(m)).toEqual(['runId', 'stage', 'instanceId', 'status', 'startedAt', 'finishedAt', 'detail']);
    expect(m.startedAt <= m.finishedAt).toBe(true);
  });

  test('inventory leaves owner and application empty when instance metadata tags are off', () => {
    const sb = sandbox();
    writeFileSync(path.join(sb.state, 'rpm.tsv'), RPM_PRE);
    writeFileSync(path.join(sb.state, 'imds-off'), '');
    expect(runStage(sb, 'post-inventory').status).toBe(0);
    const rows = csvRows(s3Text(sb, inventoryKey(RUN_ID, 'post', INSTANCE)));
    expect(rows.map((row) => [row.owner, row.application])).toEqual([['', ''], ['', ''], ['', '']]);
  });

  test('patch installs the security updates, never reboots, and summarizes in the marker', () => {
    const sb = sandbox();
    writeFileSync(path.join(sb.state, 'security.txt'), SECURITY);
    writeFileSync(path.join(sb.state, 'reboot-needed'), '');
    const r = runStage(sb, 'patch');
    expect(r.status).toBe(0);
    expect(readFileSync(path.join(sb.state, 'dnf.log'), 'utf8')).toContain('-y --security upgrade');
    expect(marker(sb, 'patch')).toMatchObject({ status: 'Success', detail: 'installed=2 failed=0 rebootRequired=true manager=dnf' });
    expect(uploads(sb)).toEqual([markerKey(RUN_ID, 'patch', INSTANCE)]);
  });

  test('patch on apt installs only the packages whose candidate comes from a security pocket', () => {
    const sb = sandbox({ managers: ['apt-get'] });
    writeFileSync(path.join(sb.state, 'apt-sim.txt'), [
      'NOTE: This is only a simulation!',
      'Inst libssl3 [3.0.2-0ubuntu1.10] (3.0.2-0ubuntu1.12 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64])',
      'Inst vim-tiny [2:8.2.3995-1ubuntu2.1] (2:8.2.3995-1ubuntu2.3 Ubuntu:22.04/jammy-updates [amd64])',
      'Inst tzdata (2024a-0ubuntu0.22.04 Ubuntu:22.04/jammy-security [all])',
      'Conf libssl3 (3.0.2-0ubuntu1.12 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64])',
    ].join('\n') + '\n');
    writeFileSync(path.join(sb.state, 'reboot-required'), '');
    expect(runStage(sb, 'patch').status).toBe(0);
    const log = readFileSync(path.join(sb.state, 'apt.log'), 'utf8');
    expect(log).toMatch(/--only-upgrade .*install libssl3 tzdata$/m);
    expect(marker(sb, 'patch')).toMatchObject({ status: 'Success', detail: 'installed=2 failed=0 rebootRequired=true manager=apt-get' });
  });

  test('a failing package install still writes the marker, Failed, and exits non-zero', () => {
    const sb = sandbox();
    writeFileSync(path.join(sb.state, 'security.txt'), SECURITY);
    writeFileSync(path.join(sb.state, 'install-fails'), '');
    const r = runStage(sb, 'patch');
    expect(r.status).not.toBe(0);
    const m = marker(sb, 'patch');
    expect(m.status).toBe('Failed');
    expect(m.detail).toMatch(/^installed=0 failed=2 rebootRequired=false manager=dnf; dnf exited with 1$/);
  });

  test('an unexpected error (no package database) gives a Failed marker through the EXIT trap', () => {
    const sb = sandbox({ managers: [] });
    const r = runStage(sb, 'pre-inventory');
    expect(r.status).not.toBe(0);
    expect(marker(sb, 'pre-inventory')).toMatchObject({ status: 'Failed', detail: expect.stringContaining('no package database') });
  });

  describe.each([
    ['python3', true],
    ['awk', false],
  ])('compare (%s)', (engine, python) => {
    test('lists new and changed packages with previous_version', () => {
      // Given a whole run: pre-inventory, patch, post-inventory on one instance
      const sb = sandbox({ python });
      writeFileSync(path.join(sb.state, 'rpm.tsv'), RPM_PRE);
      writeFileSync(path.join(sb.state, 'rpm-after.tsv'), RPM_POST);
      writeFileSync(path.join(sb.state, 'security.txt'), SECURITY);
      writeFileSync(path.join(sb.state, 'tags', 'Owner'), 'Jane "JD" Doe, Ops');
      writeFileSync(path.join(sb.state, 'tags', 'Application'), 'orders');
      for (const stage of ['pre-inventory', 'patch', 'post-inventory']) expect([stage, runStage(sb, stage).status]).toEqual([stage, 0]);
      // When compare runs
      expect(runStage(sb, 'compare').status).toBe(0);
      // Then
      const csv = s3Text(sb, compareKey(RUN_ID, INSTANCE));
      expect(csv.split('\n')[0]).toBe('instance_id,owner,domain,application,name,version,previous_version,installed_on,compared_at');
      const rows = csvRows(csv);
      expect(rows.map(({ compared_at: _c, ...rest }) => rest)).toEqual([
        { instance_id: INSTANCE, owner: 'Jane "JD" Doe, Ops', domain: 'corp.example.com', application: 'orders', name: 'kernel-livepatch-6.1', version: '1.0-0.amzn2023.x86_64', previous_version: '', installed_on: '2025-11-28T20:01:40Z' },
        { instance_id: INSTANCE, owner: 'Jane "JD" Doe, Ops', domain: 'corp.example.com', application: 'orders', name: 'openssl-libs', version: '1:3.0.8-1.amzn2023.0.12.x86_64', previous_version: '1:3.0.8-1.amzn2023.0.9.x86_64', installed_on: '2025-11-28T20:00:00Z' },
      ]);
      expect(rows.every((row) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(row.compared_at))).toBe(true);
      expect(marker(sb, 'compare')).toMatchObject({ status: 'Success', detail: `2 new or changed packages (${engine})` });
      expect(uploads(sb).slice(-2)).toEqual([compareKey(RUN_ID, INSTANCE), markerKey(RUN_ID, 'compare', INSTANCE)]);
    });
  });

  test('compare fails with a Failed marker when the post inventory is missing', () => {
    const sb = sandbox();
    writeFileSync(path.join(sb.state, 'rpm.tsv'), RPM_PRE);
    expect(runStage(sb, 'pre-inventory').status).toBe(0);
    expect(runStage(sb, 'compare').status).not.toBe(0);
    expect(marker(sb, 'compare')).toMatchObject({ status: 'Failed', detail: `no post inventory for ${INSTANCE}` });
  });

  test('failed-check lists the security updates still pending and the pending reboot', () => {
    const sb = sandbox();
    writeFileSync(path.join(sb.state, 'security.txt'), 'ALAS2023-2025-001 Important/Sec. openssl-libs-1:3.0.8-1.amzn2023.0.12.x86_64\n');
    writeFileSync(path.join(sb.state, 'reboot-required'), '');
    expect(runStage(sb, 'failed-check').status).toBe(0);
    const csv = s3Text(sb, failedKey(RUN_ID, INSTANCE));
    expect(csv.split('\n')[0]).toBe('instance_id,name,version,reason,reboot_pending,checked_at');
    const rows = csvRows(csv);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ instance_id: INSTANCE, name: 'openssl-libs', version: '1:3.0.8-1.amzn2023.0.12.x86_64', reason: 'security update not installed (dnf)', reboot_pending: 'true' });
    expect(marker(sb, 'failed-check')).toMatchObject({ status: 'Success', detail: 'failed=1 rebootPending=true manager=dnf' });
  });

  test('agent-update runs with pasted parameter values (no SSM_ variables) and updates through dnf', () => {
    const sb = sandbox();
    writeFileSync(path.join(sb.state, 'agent-version'), '3.2.582.0');
    const r = runStage(sb, 'agent-update');
    expect(r.status).toBe(0);
    expect(marker(sb, 'agent-update')).toMatchObject({ runId: RUN_ID, stage: 'agent-update', status: 'Success', detail: 'agent updated from 3.2.582.0 to 3.3.1000.0 (dnf)' });
  });

  test('agent-update writes a Failed marker when the update fails', () => {
    const sb = sandbox();
    writeFileSync(path.join(sb.state, 'agent-version'), '3.2.582.0');
    writeFileSync(path.join(sb.state, 'install-fails'), '');
    expect(runStage(sb, 'agent-update').status).not.toBe(0);
    expect(marker(sb, 'agent-update')).toMatchObject({ status: 'Failed', detail: 'dnf update amazon-ssm-agent failed' });
  });

  describe('verify', () => {
    const AFTER = '2026-11-28T22:09:50.123Z';
    const epoch = (iso: string): number => Math.floor(Date.parse(iso) / 1000);
    /** A sandbox whose kernel booted at `bootIso` (the btime line of its /proc/stat). */
    const booted = (bootIso: string): Sandbox => {
      const sb = sandbox();
      writeFileSync(path.join(sb.state, 'proc-stat'), `cpu  1 2 3 4\nintr 0\nbtime ${epoch(bootIso)}\nprocesses 42\n`);
      mkdirSync(path.join(sb.state, 'units'));
      mkdirSync(path.join(sb.state, 'http'));
      return sb;
    };
    const unit = (sb: Sandbox, name: string, state: string) => writeFileSync(path.join(sb.state, 'units', name), state);
    const answers = (sb: Sandbox, url: string, code: string) => writeFileSync(path.join(sb.state, 'http', url.replace(/[^A-Za-z0-9]/g, '_')), code);
    const tag = (sb: Sandbox, key: string, value: string) => writeFileSync(path.join(sb.state, 'tags', key), value);

    test('all checks good: Success marker listing each check, from the parameters and the instance tags', () => {
      // Given a fresh boot, the application's unit and URL from the parameters, and the instance's own tags
      const sb = booted('2026-11-28T22:10:03Z');
      unit(sb, 'nginx.service', 'active');
      unit(sb, 'app-worker@1.service', 'active');
      answers(sb, 'http://localhost:8080/health', '200');
      answers(sb, 'http://127.0.0.1/ready', '302');
      tag(sb, 'HealthUnits', 'app-worker@1.service, nginx.service');
      tag(sb, 'HealthUrl', 'http://127.0.0.1/ready');
      tag(sb, 'HealthServices', 'W3SVC');
      // When verify runs
      const r = runStage(sb, 'verify', { RebootedAfter: AFTER, SystemdUnits: 'nginx.service', HealthUrl: 'http://localhost:8080/health', ServiceNames: 'W3SVC' });
      // Then
      expect(r.status).toBe(0);
      expect(marker(sb, 'verify')).toMatchObject({
        runId: RUN_ID,
        stage: 'verify',
        status: 'Success',
        detail: 'boot 2026-11-28T22:10:03Z after 2026-11-28T22:09:50Z; unit nginx.service active; unit app-worker@1.service active; url http://localhost:8080/health 200; url http://127.0.0.1/ready 302',
      });
      expect(uploads(sb)).toEqual([markerKey(RUN_ID, 'verify', INSTANCE)]);
      expect(readFileSync(path.join(sb.state, 'curl.log'), 'utf8')).toContain("--noproxy * http://localhost:8080/health");
    });

    test('an inactive unit gives a Failed marker that still lists every check', () => {
      const sb = booted('2026-11-28T22:10:03Z');
      unit(sb, 'nginx.service', 'active');
      unit(sb, 'orders.service', 'failed');
      answers(sb, 'http://localhost/health', '200');
      const r = runStage(sb, 'verify', { RebootedAfter: AFTER, SystemdUnits: 'nginx.service,orders.service', HealthUrl: 'http://localhost/health' });
      expect(r.status).not.toBe(0);
      expect(marker(sb, 'verify')).toMatchObject({
        status: 'Failed',
        detail: 'boot 2026-11-28T22:10:03Z after 2026-11-28T22:09:50Z; unit nginx.service active; unit orders.service failed; url http://localhost/health 200; 1 of 4 checks failed',
      });
    });

    test('a boot time before RebootedAfter fails: the instance did not reboot', () => {
      const sb = booted('2026-11-28T21:37:46Z');
      unit(sb, 'nginx.service', 'active');
      const r = runStage(sb, 'verify', { RebootedAfter: AFTER, SystemdUnits: 'nginx.service' });
      expect(r.status).not.toBe(0);
      expect(marker(sb, 'verify')).toMatchObject({ status: 'Failed', detail: 'did not reboot: boot time 2026-11-28T21:37:46Z is before 2026-11-28T22:09:50Z' });
      expect(existsSync(path.join(sb.state, 'systemctl.log'))).toBe(false);
    });

    test('a URL that answers 5xx or not at all fails', () => {
      const sb = booted('2026-11-28T22:10:03Z');
      answers(sb, 'http://localhost/health', '503');
      tag(sb, 'HealthUrl', 'http://localhost:9/down');
      expect(runStage(sb, 'verify', { RebootedAfter: AFTER, HealthUrl: 'http://localhost/health' }).status).not.toBe(0);
      expect(marker(sb, 'verify').detail).toBe(
        'boot 2026-11-28T22:10:03Z after 2026-11-28T22:09:50Z; url http://localhost/health 503; url http://localhost:9/down no answer (curl exit 7); 2 of 3 checks failed',
      );
    });

    test('ignores and reports tag values the parameter patterns would refuse', () => {
      const sb = booted('2026-11-28T22:10:03Z');
      tag(sb, 'HealthUnits', 'nginx;reboot');
      tag(sb, 'HealthUrl', 'http://evil.example.com/$(id)');
      expect(runStage(sb, 'verify', { RebootedAfter: AFTER }).status).toBe(0);
      expect(marker(sb, 'verify')).toMatchObject({
        status: 'Success',
        detail: 'boot 2026-11-28T22:10:03Z after 2026-11-28T22:09:50Z; no application checks configured; tag HealthUnits ignored: not allowed; tag HealthUrl ignored: not allowed',
      });
      expect(existsSync(path.join(sb.state, 'systemctl.log'))).toBe(false);
      expect(existsSync(path.join(sb.state, 'curl.log'))).toBe(false);
    });

    test('falls back to uptime -s when /proc/stat has no btime', () => {
      const sb = booted('2026-11-28T22:10:03Z');
      writeFileSync(path.join(sb.state, 'proc-stat'), 'cpu  1 2 3 4\n');
      writeFileSync(path.join(sb.bin, 'uptime'), "#!/usr/bin/env bash\n[ \"$1\" = -s ] && printf '2026-11-28 22:10:03\\n'\n");
      chmodSync(path.join(sb.bin, 'uptime'), 0o755);
      expect(runStage(sb, 'verify', { RebootedAfter: AFTER }).status).toBe(0);
      expect(marker(sb, 'verify').detail).toMatch(/^boot 2026-11-28T22:10:03Z after 2026-11-28T22:09:50Z; /);
    });

    test('a parameter that slipped past the allowedPattern is refused before any check', () => {
      const sb = booted('2026-11-28T22:10:03Z');
      expect(runStage(sb, 'verify', { RebootedAfter: AFTER, SystemdUnits: 'nginx;id' }).status).not.toBe(0);
      expect(marker(sb, 'verify')).toMatchObject({ status: 'Failed', detail: 'bad SystemdUnits' });
    });
  });

  test('every run leaves nothing behind in its temp dir', () => {
    const sb = sandbox();
    writeFileSync(path.join(sb.state, 'rpm.tsv'), RPM_PRE);
    expect(runStage(sb, 'pre-inventory').status).toBe(0);
    expect(spawnSync('ls', ['-A', path.join(sb.root, 'tmp')], { encoding: 'utf8' }).stdout).toBe('');
    expect(existsSync(path.join(sb.s3, BUCKET))).toBe(true);
    expect(COMMON_DOCUMENT_PARAMETERS.length).toBeGreaterThan(0);
  });
});
