import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { Command, SsmDocument } from './ssm-service';

/** Package managers: never reachable from an agent's PATH except as the simulation's own shims. */
const PACKAGE_MANAGERS = ['apt', 'apt-get', 'apt-cache', 'apt-mark', 'aptitude', 'dpkg', 'dpkg-query', 'dpkg-deb', 'unattended-upgrade', 'rpm', 'yum', 'dnf', 'microdnf', 'zypper', 'apk', 'pacman', 'snap', 'needs-restarting', 'pip', 'pip3', 'aws', 'date', 'hostname', 'sudo', 'reboot', 'shutdown', 'systemctl'];
const SHIM_SOURCES = path.join(__dirname, 'shims');

export interface LinuxPackage {
  name: string;
  version: string;
  release: string;
  arch: string;
  installTime: number;
}

/** $PP_SIM_STATE of one Linux instance, read and written by shims/pkgsim.js. */
export interface PackageState {
  family: 'dpkg' | 'rpm';
  packages: LinuxPackage[];
  updates: Record<string, { version: string; release: string }>;
  rebootRequired: boolean;
  rebootFile?: string;
  latestAgent?: string;
  failPatch?: boolean;
}

export interface AgentSandbox {
  readonly root: string;
  readonly toolbox: string;
  readonly common: string;
}

/**
 * The agents' PATH holds no host directory: a toolbox of links to the host's tools minus every
 * package manager, then the simulation's shims. So a script cannot reach the host's real apt-get
 * even when it looks for a package manager its simulated instance does not have.
 */
export function prepareSandbox(root: string, realDate: string): AgentSandbox {
  const toolbox = path.join(root, 'toolbox');
  const common = path.join(root, 'shims');
  fs.mkdirSync(toolbox, { recursive: true });
  fs.mkdirSync(common, { recursive: true });
  const banned = new Set(PACKAGE_MANAGERS);
  for (const dir of ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (banned.has(name) || /^(apt|dpkg|rpm|yum|dnf|pip)/.test(name)) continue;
      const link = path.join(toolbox, name);
      if (fs.existsSync(link)) continue;
      try {
        fs.symlinkSync(path.join(dir, name), link);
      } catch {
        /* a name seen twice */
      }
    }
  }
  if (!fs.existsSync(path.join(toolbox, 'node'))) fs.symlinkSync(process.execPath, path.join(toolbox, 'node'));
  fs.copyFileSync(path.join(SHIM_SOURCES, 'aws.js'), path.join(common, 'aws'));
  fs.chmodSync(path.join(common, 'aws'), 0o755);
  fs.writeFileSync(
    path.join(common, 'date'),
    `#!/bin/bash\n# Simulated clock: real date + the run's offset, unless a date is given.\nfor a in "$@"; do case "$a" in -d|-d*|--date*|-r|-r*|--reference*|-f|--file*|-s|--set*) exec ${realDate} "$@";; esac; done\nexec ${realDate} -d "@$(( $(${realDate} +%s) + \${PP_SIM_CLOCK_OFFSET:-0} ))" "$@"\n`,
    { mode: 0o755 },
  );
  // systemd and the local health URL, as the verify document sees them after a reboot.
  fs.writeFileSync(
    path.join(common, 'systemctl'),
    `#!/bin/bash\n# Simulated systemd: every unit is active except those in PP_SIM_FAILED_UNITS (comma-separated).\nfailed=",\${PP_SIM_FAILED_UNITS:-},"\ncase "\${1:-}" in\n  is-active)\n    shift; rc=0\n    for u in "$@"; do\n      case "$u" in -*) continue;; esac\n      case "$failed" in *",$u,"*|*",\${u%.service},"*) echo inactive; rc=3;; *) echo active;; esac\n    done\n    exit "$rc";;\n  *) exit 0;;\nesac\n`,
    { mode: 0o755 },
  );
  const realCurl = ['/usr/bin/curl', '/bin/curl', '/usr/local/bin/curl'].find((c) => fs.existsSync(c)) ?? 'curl-missing';
  fs.writeFileSync(
    path.join(common, 'curl'),
    [
      '#!/bin/bash',
      '# Local health URLs (http://localhost, http://127.0.0.1 other than the simulation\'s own IMDS and S3) answer',
      '# 200, or 503 when PP_SIM_HEALTH_URL_FAILS=1; everything else goes to the real curl.',
      'url=""; fmt=""; fail=0; args=("$@")',
      'for ((i = 0; i < ${#args[@]}; i++)); do',
      '  a="${args[$i]}"',
      '  case "$a" in',
      '    -w|--write-out) fmt="${args[$((i + 1))]}"; i=$((i + 1));;',
      '    -f|--fail|-sf|-fs|-sSf|-fsS|-sSfL|-fsSL) fail=1;;',
      '    http://localhost*|http://127.0.0.1*) url="$a";;',
      '  esac',
      'done',
      'for p in ${PP_SIM_OWN_ENDPOINTS:-}; do case "$url" in "$p"*) url="";; esac; done',
      `if [ -z "$url" ]; then exec ${realCurl} "$@"; fi`,
      'code=200; if [ "${PP_SIM_HEALTH_URL_FAILS:-}" = 1 ]; then code=503; fi',
      'pat="%{http_code}"; printf \'%s\' "${fmt//"$pat"/$code}"',
      'if [ "$code" -ge 400 ] && [ "$fail" = 1 ]; then exit 22; fi',
      'exit 0',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  fs.writeFileSync(
    path.join(common, 'hostname'),
    `#!/bin/bash\ncase "\${1:-}" in -d|--domain) printf '%s\\n' "\${PP_SIM_DOMAIN:-}";; -f|--fqdn) printf '%s.%s\\n' "\${PP_SIM_HOSTNAME:-localhost}" "\${PP_SIM_DOMAIN:-}";; *) printf '%s\\n' "\${PP_SIM_HOSTNAME:-localhost}";; esac\n`,
    { mode: 0o755 },
  );
  return { root, toolbox, common };
}

/** Per-instance folder: its package-manager shims (only those of its family) and its state. */
export function prepareInstanceDir(sandbox: AgentSandbox, instanceId: string, state: PackageState): string {
  const dir = path.join(sandbox.root, 'instances', instanceId);
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  const src = path.join(SHIM_SOURCES, 'pkgsim.js');
  const tools = state.family === 'rpm' ? ['rpm', 'dnf', 'yum', 'needs-restarting'] : ['apt-get', 'apt-cache', 'dpkg-query'];
  for (const t of tools) {
    fs.copyFileSync(src, path.join(bin, t));
    fs.chmodSync(path.join(bin, t), 0o755);
  }
  state.rebootFile = path.join(dir, 'reboot-required');
  fs.writeFileSync(path.join(dir, 'packages.json'), JSON.stringify(state));
  return dir;
}

export function readPackageState(dir: string): PackageState {
  return JSON.parse(fs.readFileSync(path.join(dir, 'packages.json'), 'utf-8')) as PackageState;
}

export interface LinuxRun {
  readonly sandbox: AgentSandbox;
  readonly instanceDir: string;
  readonly instanceId: string;
  readonly region: string;
  readonly hostname: string;
  readonly domain: string;
  readonly imdsEndpoint: string;
  readonly s3Endpoint: string;
  readonly clockOffsetSeconds: number;
  readonly fail: boolean;
  readonly dropMarker: boolean;
  readonly realAws?: string;
  /** Extra environment of the agent (fake /proc/stat, failing units, ...). */
  readonly env?: Record<string, string>;
}

/** Substitutes {{ Param }} like the agent does, and sets SSM_<Param> (ENV_VAR interpolation). */
export function interpolate(script: string, params: Record<string, string[]>): string {
  return script.replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, (m, name: string) => (params[name] ? params[name].join(',') : m));
}

/** Runs the document's real Linux script under sh, as aws:runShellScript does, in the instance's sandbox. */
export function runLinuxScript(run: LinuxRun, cmd: Command, doc: SsmDocument, timeoutMs: number): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const workDir = path.join(run.instanceDir, 'commands', cmd.commandId);
  fs.mkdirSync(workDir, { recursive: true });
  const scriptPath = path.join(workDir, '_script.sh');
  fs.writeFileSync(scriptPath, interpolate(doc.linuxScript ?? '', cmd.parameters), { mode: 0o700 });
  const env: Record<string, string> = {
    PATH: [path.join(run.instanceDir, 'bin'), run.sandbox.common, run.sandbox.toolbox].join(':'),
    HOME: run.instanceDir,
    TMPDIR: path.join(run.instanceDir, 'tmp'),
    LANG: 'C.UTF-8',
    AWS_SSM_INSTANCE_ID: run.instanceId,
    AWS_SSM_REGION_NAME: run.region,
    AWS_REGION: run.region,
    AWS_DEFAULT_REGION: run.region,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_EC2_METADATA_SERVICE_ENDPOINT: run.imdsEndpoint,
    PP_REBOOT_REQUIRED_FILE: path.join(run.instanceDir, 'reboot-required'),
    PP_SIM_STATE: path.join(run.instanceDir, 'packages.json'),
    PP_SIM_CALLS: path.join(run.instanceDir, 'calls.log'),
    PP_SIM_S3_ENDPOINT: run.s3Endpoint,
    PP_SIM_CLOCK_OFFSET: String(run.clockOffsetSeconds),
    PP_SIM_HOSTNAME: run.hostname,
    PP_SIM_DOMAIN: run.domain,
    ...(run.realAws ? { PP_SIM_REAL_AWS: run.realAws } : {}),
    ...(run.fail ? { PP_SIM_FAIL: '1' } : {}),
    ...(run.dropMarker ? { PP_SIM_DROP_MARKERS: '1' } : {}),
    ...(run.env ?? {}),
  };
  for (const [name, values] of Object.entries(cmd.parameters)) env[`SSM_${name}`] = values.join(',');
  return new Promise((resolve) => {
    const child = spawn(path.join(run.sandbox.toolbox, 'sh'), [scriptPath], { cwd: workDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ exitCode: code ?? (signal ? 137 : 1), stdout, stderr });
    });
  });
}

/** Instance metadata (IMDSv2) for every simulated instance: http://127.0.0.1:<port>/<instanceId>/latest/... */
export async function startImds(tagsOf: (instanceId: string) => Record<string, string> | undefined): Promise<{ base: string; stop(): Promise<void> }> {
  const server = http.createServer((req, res): void => {
    const m = /^\/([^/]+)(\/latest\/.*)$/.exec(req.url ?? '');
    const tags = m ? tagsOf(m[1]) : undefined;
    if (!m || !tags) {
      res.writeHead(404);
      res.end();
      return;
    }
    const p = m[2];
    if (p === '/latest/api/token' && req.method === 'PUT') {
      res.writeHead(200);
      res.end(`token-${m[1]}`); return;
    }
    if (req.headers['x-aws-ec2-metadata-token'] !== `token-${m[1]}`) {
      res.writeHead(401);
      res.end(); return;
    }
    if (p === '/latest/meta-data/instance-id') {
      res.writeHead(200);
      res.end(m[1]); return;
    }
    if (p === '/latest/meta-data/tags/instance' || p === '/latest/meta-data/tags/instance/') {
      res.writeHead(200);
      res.end(Object.keys(tags).join('\n')); return;
    }
    const tag = /^\/latest\/meta-data\/tags\/instance\/(.+)$/.exec(p);
    if (tag && tags[decodeURIComponent(tag[1])] !== undefined) {
      res.writeHead(200);
      res.end(tags[decodeURIComponent(tag[1])]); return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    base: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
