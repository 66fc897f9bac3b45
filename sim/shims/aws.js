#!/usr/bin/env node
'use strict';
// A fast `aws` for the simulated agents: `aws s3 cp` (file or '-') to and from the local S3 (moto),
// so 200 instances do not pay the CLI's start-up. Anything else runs the real CLI with --endpoint-url.
// moto answers unsigned GETs as anonymous (403), so requests carry an unchecked SigV4-shaped header.
// $PP_SIM_DROP_MARKERS=1 loses marker uploads (fault: marker never written); $PP_SIM_FAIL=1 fails other transfers.
const fs = require('fs');
const http = require('http');
const { spawnSync } = require('child_process');
const args = process.argv.slice(2);
const endpoint = process.env.PP_SIM_S3_ENDPOINT;
const positional = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--region' || args[i] === '--content-type' || args[i] === '--profile') i++;
  else if (!args[i].startsWith('--')) positional.push(args[i]);
}
const s3url = (u) => { const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(u); return m ? { bucket: m[1], key: m[2] } : null; };
function request(method, bucket, key, body) {
  return new Promise((resolve, reject) => {
    const u = new URL(`${endpoint}/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`);
    const req = http.request({ method, hostname: u.hostname, port: u.port, path: u.pathname, headers: { ...(body ? { 'content-length': body.length } : {}), authorization: `AWS4-HMAC-SHA256 Credential=testing/20240101/${process.env.AWS_REGION || 'us-east-1'}/s3/aws4_request, SignedHeaders=host, Signature=0` } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
async function main() {
  if (positional[0] === 's3' && positional[1] === 'cp' && endpoint) {
    const [src, dst] = positional.slice(2);
    const to = s3url(dst); const from = s3url(src);
    if (to && !from) {
      if (process.env.PP_SIM_DROP_MARKERS === '1' && to.key.includes('/markers/')) return 0;
      if (process.env.PP_SIM_FAIL === '1' && !to.key.includes('/markers/')) { process.stderr.write('upload failed: An error occurred (AccessDenied)\n'); return 1; }
      const body = src === '-' ? fs.readFileSync(0) : fs.readFileSync(src);
      const r = await request('PUT', to.bucket, to.key, body);
      if (r.status >= 300) { process.stderr.write(`upload failed: ${r.status} ${r.body}\n`); return 1; }
      return 0;
    }
    if (from && !to) {
      if (process.env.PP_SIM_FAIL === '1') { process.stderr.write('download failed: An error occurred (AccessDenied)\n'); return 1; }
      const r = await request('GET', from.bucket, from.key);
      if (r.status === 404) { process.stderr.write(`fatal error: An error occurred (404) when calling the HeadObject operation: Key "${from.key}" does not exist\n`); return 1; }
      if (r.status >= 300) { process.stderr.write(`download failed: ${r.status}\n`); return 1; }
      if (dst === '-') process.stdout.write(r.body); else fs.writeFileSync(dst, r.body);
      return 0;
    }
  }
  const real = process.env.PP_SIM_REAL_AWS;
  if (!real) { process.stderr.write(`aws: not simulated: ${args.join(' ')}\n`); return 1; }
  const r = spawnSync(real, ['--endpoint-url', process.env.PP_SIM_S3_ENDPOINT, ...args], { stdio: 'inherit' });
  return r.status ?? 1;
}
main().then((rc) => process.exit(rc), (err) => { process.stderr.write(String(err) + '\n'); process.exit(1); });
