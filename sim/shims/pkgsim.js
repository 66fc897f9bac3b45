#!/usr/bin/env node
'use strict';
// Simulated package managers (dnf, yum, rpm, needs-restarting, apt-get, apt-cache, dpkg-query).
// The instance's package state lives in $PP_SIM_STATE (JSON); $PP_SIM_FAIL=1 makes every call fail.
const fs = require('fs');
const path = require('path');
const tool = path.basename(process.argv[1]);
const args = process.argv.slice(2);
const file = process.env.PP_SIM_STATE;
const log = (s) => fs.appendFileSync(process.env.PP_SIM_CALLS || '/dev/null', `${tool} ${args.join(' ')}\n`);
log();
if (!file) { process.stderr.write(`${tool}: simulated package manager without PP_SIM_STATE\n`); process.exit(1); }
const state = JSON.parse(fs.readFileSync(file, 'utf-8'));
const save = () => fs.writeFileSync(file, JSON.stringify(state));
const out = (s) => process.stdout.write(s);
const fail = (msg, code = 1) => { process.stderr.write(`${tool}: ${msg}\n`); process.exit(code); };
if (process.env.PP_SIM_FAIL === '1') fail('simulated failure: could not reach the repositories (Errno 14)');
const unesc = (f) => f.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
const pkg = (n) => state.packages.find((p) => p.name === n);
const full = (p) => `${p.version}-${p.release}`;
const nevra = (p, u) => `${p.name}-${u.version}-${u.release}.${p.arch}`;
const secUpdates = () => state.packages.filter((p) => state.updates[p.name]);
function applyUpdates(names) {
  let kernel = false;
  for (const p of state.packages) {
    const u = state.updates[p.name];
    if (!u || (names && !names.includes(p.name))) continue;
    p.version = u.version; p.release = u.release; p.installTime = Math.floor(Date.now() / 1000) + Number(process.env.PP_SIM_CLOCK_OFFSET || 0);
    delete state.updates[p.name];
    out(`Upgraded: ${p.name}-${full(p)}\n`);
    if (/^(kernel|linux-image)/.test(p.name)) kernel = true;
  }
  if (kernel) state.rebootRequired = true;
  if (kernel && state.rebootFile) fs.writeFileSync(state.rebootFile, '*** System restart required ***\n');
  save();
}
const rpmFmt = (fmt, p) => unesc(fmt).replace(/%\{(\w+)\}/g, (_, k) => ({ NAME: p.name, VERSION: p.version, RELEASE: p.release, ARCH: p.arch, EPOCHNUM: '0', EPOCH: '(none)', INSTALLTIME: String(p.installTime) })[k] ?? '');
const dpkgFmt = (fmt, p) => unesc(fmt).replace(/\$\{([\w:-]+)\}/g, (_, k) => ({ 'db:Status-Abbrev': 'ii ', Package: p.name, Version: full(p), Architecture: p.arch === 'x86_64' ? 'amd64' : p.arch, Status: 'install ok installed' })[k] ?? '');

switch (tool) {
  case 'rpm': {
    if (state.family !== 'rpm') fail('rpm database not found');
    const qf = args.includes('--queryformat') ? args[args.indexOf('--queryformat') + 1] : args.includes('--qf') ? args[args.indexOf('--qf') + 1] : null;
    if (args.includes('-qa')) { for (const p of state.packages) out(qf ? rpmFmt(qf, p) : `${p.name}-${full(p)}.${p.arch}\n`); break; }
    if (args.includes('-q')) {
      const names = args.filter((a, i) => !a.startsWith('-') && !(i > 0 && ['--queryformat', '--qf'].includes(args[i - 1])));
      let rc = 0;
      for (const n of names) { const p = pkg(n); if (!p) { out(`package ${n} is not installed\n`); rc = 1; } else out(qf ? rpmFmt(qf, p) : `${p.name}-${full(p)}.${p.arch}\n`); }
      process.exit(rc);
    }
    fail(`unsupported: rpm ${args.join(' ')}`);
    break;
  }
  case 'needs-restarting':
    if (args.includes('-r')) { if (state.rebootRequired) { out('Reboot is required\n'); process.exit(1); } out('No core libraries or services have been updated.\n'); process.exit(0); }
    break;
  case 'dnf':
  case 'yum': {
    const words = args.filter((a) => !a.startsWith('-'));
    const cmd = words[0];
    if (cmd === 'updateinfo') { for (const p of secUpdates()) out(`ALAS-2024-${1000 + p.name.length} important/Sec. ${nevra(p, state.updates[p.name])}\n`); break; }
    if (cmd === 'check-update') { const u = secUpdates(); for (const p of u) out(`${p.name}.${p.arch} ${state.updates[p.name].version}-${state.updates[p.name].release} amzn2-core\n`); process.exit(u.length ? 100 : 0); }
    if (cmd === 'list' && args.includes('--available')) { const n = words[1]; if (n && state.updates[n]) { out(`${n}.x86_64 ${state.updates[n].version}-${state.updates[n].release} amzn2-core\n`); break; } process.exit(1); }
    if (cmd === 'upgrade' || cmd === 'update') {
      if (state.failPatch) fail('Transaction check error: file conflicts', 1);
      const names = words.slice(1);
      applyUpdates(names.length ? names : null);
      break;
    }
    if (cmd === 'install') {
      const n = words.slice(1);
      if (n.some((x) => x.includes('amazon-ssm-agent'))) { const p = pkg('amazon-ssm-agent'); if (p) { p.version = state.latestAgent || p.version; save(); } break; }
      applyUpdates(n);
      break;
    }
    fail(`unsupported: ${tool} ${args.join(' ')}`);
    break;
  }
  case 'apt-get': {
    const words = args.filter((a, i) => !a.startsWith('-') && !(i > 0 && args[i - 1] === '-o'));
    const cmd = words[0];
    if (cmd === 'update') { out('Reading package lists... Done\n'); break; }
    if (args.includes('-s') && (cmd === 'dist-upgrade' || cmd === 'upgrade')) {
      for (const p of secUpdates()) { const u = state.updates[p.name]; out(`Inst ${p.name} [${full(p)}] (${u.version}-${u.release} Ubuntu:22.04/jammy-security [amd64])\n`); }
      break;
    }
    if (cmd === 'install' || cmd === 'upgrade' || cmd === 'dist-upgrade') {
      if (state.failPatch) fail('E: Sub-process /usr/bin/dpkg returned an error code (1)', 100);
      const names = words.slice(1).filter((n) => !n.endsWith('.deb'));
      if (words.slice(1).some((n) => n.endsWith('.deb'))) { const p = pkg('amazon-ssm-agent'); if (p) { p.version = state.latestAgent || p.version; save(); } break; }
      applyUpdates(names.length ? names : null);
      break;
    }
    fail(`unsupported: apt-get ${args.join(' ')}`, 100);
    break;
  }
  case 'apt-cache': {
    if (args[0] === 'policy') { const n = args[1]; const p = pkg(n); const u = state.updates[n]; out(`${n}:\n  Installed: ${p ? full(p) : '(none)'}\n  Candidate: ${u ? `${u.version}-${u.release}` : p ? full(p) : '(none)'}\n`); break; }
    fail(`unsupported: apt-cache ${args.join(' ')}`);
    break;
  }
  case 'dpkg-query': {
    if (state.family !== 'dpkg') fail('dpkg database not found');
    const fi = args.findIndex((a) => a.startsWith('-f') || a.startsWith('--showformat'));
    const fmt = fi < 0 ? '${Package}\t${Version}\n' : args[fi].includes('=') ? args[fi].slice(args[fi].indexOf('=') + 1) : args[fi + 1];
    const names = args.filter((a, i) => !a.startsWith('-') && !(fi >= 0 && i === fi + 1 && !args[fi].includes('=')));
    if (names.length === 0) { for (const p of state.packages) out(dpkgFmt(fmt, p)); break; }
    let rc = 0;
    for (const n of names) { const p = pkg(n); if (!p) { process.stderr.write(`dpkg-query: no packages found matching ${n}\n`); rc = 1; } else out(dpkgFmt(fmt, p)); }
    process.exit(rc);
    break;
  }
  default:
    fail(`${tool} is not simulated`, 127);
}
