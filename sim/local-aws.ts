import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export class MotoMissingError extends Error {
  public readonly name = 'MotoMissingError';
  constructor() {
    super("moto is not installed: pip install 'moto[server]'");
  }
}

export interface MotoServer {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Stops every moto this process started, on exit, Ctrl-C and failure. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = (): void => {
    for (const child of running) if (child.pid && child.exitCode === null) child.kill('SIGTERM');
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

export function motoInstalled(python = 'python3'): boolean {
  const res = spawnSync(python, ['-c', 'import moto.server, flask'], { stdio: 'ignore' });
  return res.status === 0;
}

/** Starts `python3 -m moto.server` on a free port and waits until it answers. */
export async function startMoto(python = 'python3', timeoutMs = 30000): Promise<MotoServer> {
  if (!motoInstalled(python)) throw new MotoMissingError();
  installExitHook();
  const port = await freePort();
  const child = spawn(python, ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, MOTO_ALLOW_NONEXISTENT_REGION: 'true' },
  });
  running.add(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    running.delete(child);
    if (child.exitCode !== null || child.signalCode) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        child.kill('SIGKILL');
        resolve();
      }, 3000);
      child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      child.kill('SIGTERM');
    });
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto server exited with code ${child.exitCode}: ${stderr}`);
    if (await answers(`${url}/moto-api/`)) return { url, port, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`moto server did not answer on ${url} within ${timeoutMs} ms: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

function answers(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(url, (res) => {
      res.resume();
      resolve((res.statusCode ?? 500) < 500);
    });
    req.on('error', () => resolve(false));
    req.setTimeout(1000, () => {
      req.destroy();
      resolve(false);
    });
  });
}

/** Hook that may rewrite an EC2 query-protocol response (for example snapshot states) before the SDK sees it. */
export type Ec2ResponseHook = (action: string, params: URLSearchParams, body: string) => string;

export interface CountingProxy {
  readonly url: string;
  /** API calls seen, by "service:Operation". */
  readonly counts: Map<string, number>;
  stop(): Promise<void>;
}

/**
 * A counting HTTP proxy in front of moto: production code stays untouched, so API calls are counted
 * on the server side. It also lets the simulation shape EC2 answers moto cannot give (snapshot states).
 */
export async function startCountingProxy(target: string, ec2Hook?: Ec2ResponseHook): Promise<CountingProxy> {
  const counts = new Map<string, number>();
  const bump = (k: string): void => {
    counts.set(k, (counts.get(k) ?? 0) + 1);
  };
  const targetUrl = new URL(target);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const { service, operation, params } = classify(req.method ?? 'GET', req.url ?? '/', req.headers, body);
      bump(`${service}:${operation}`);
      const headers = { ...req.headers, host: targetUrl.host };
      const up = http.request(
        { host: targetUrl.hostname, port: targetUrl.port, method: req.method, path: req.url, headers },
        (upRes) => {
          const upChunks: Buffer[] = [];
          upRes.on('data', (c: Buffer) => upChunks.push(c));
          upRes.on('end', () => {
            let out = Buffer.concat(upChunks);
            const outHeaders = { ...upRes.headers };
            if (service === 'ec2' && ec2Hook && params) {
              const rewritten = ec2Hook(operation, params, out.toString('utf-8'));
              out = Buffer.from(rewritten, 'utf-8');
              delete outHeaders['content-length'];
              delete outHeaders['transfer-encoding'];
              outHeaders['content-length'] = String(out.length);
            }
            res.writeHead(upRes.statusCode ?? 502, outHeaders);
            res.end(out);
          });
        },
      );
      up.on('error', (err) => {
        res.writeHead(502);
        res.end(String(err));
      });
      up.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function classify(
  method: string,
  url: string,
  headers: http.IncomingHttpHeaders,
  body: Buffer,
): { service: string; operation: string; params?: URLSearchParams } {
  const auth = String(headers.authorization ?? '');
  const scope = /Credential=[^/]+\/[^/]+\/[^/]+\/([^/]+)\//.exec(auth)?.[1];
  const ctype = String(headers['content-type'] ?? '');
  if (ctype.includes('x-www-form-urlencoded') && method === 'POST') {
    const params = new URLSearchParams(body.toString('utf-8'));
    const action = params.get('Action') ?? 'Unknown';
    return { service: scope ?? (params.has('Version') && params.get('Version')!.startsWith('2011') ? 'sts' : 'ec2'), operation: action, params };
  }
  return { service: scope ?? 's3', operation: s3Operation(method, url) };
}

function s3Operation(method: string, rawUrl: string): string {
  const u = new URL(rawUrl, 'http://x');
  const parts = u.pathname.split('/').filter(Boolean);
  const hasKey = parts.length > 1;
  const q = u.searchParams;
  switch (method) {
    case 'GET':
      if (!hasKey) return q.get('list-type') === '2' ? 'ListObjectsV2' : parts.length ? 'ListObjects' : 'ListBuckets';
      return 'GetObject';
    case 'PUT':
      return hasKey ? 'PutObject' : 'CreateBucket';
    case 'HEAD':
      return hasKey ? 'HeadObject' : 'HeadBucket';
    case 'DELETE':
      return hasKey ? 'DeleteObject' : 'DeleteBucket';
    case 'POST':
      return q.has('delete') ? 'DeleteObjects' : 'PostObject';
    default:
      return method;
  }
}

/** One snapshot of an EC2 XML response: what a rewrite may change. */
export interface SnapshotItem {
  readonly snapshotId: string;
  readonly volumeId?: string;
  readonly status?: string;
}

/**
 * Calls `edit` for every top-level <item> of a response's <snapshotSet> (CreateSnapshots,
 * DescribeSnapshots) and sets the status and progress it returns. Child order differs between
 * operations (CreateSnapshots puts volumeId first and has no status), and tagSet holds items of its
 * own, so items are split by depth, never by a regular expression over the whole body.
 */
export function rewriteSnapshotItems(body: string, edit: (item: SnapshotItem) => { status: string; progress: number } | undefined): string {
  const start = body.indexOf('<snapshotSet>');
  const end = body.lastIndexOf('</snapshotSet>');
  if (start < 0 || end < 0) return body;
  const inner = body.slice(start + '<snapshotSet>'.length, end);
  const items: string[] = [];
  const tag = /<item>|<\/item>|<item\/>/g;
  let depth = 0;
  let from = 0;
  for (let m = tag.exec(inner); m; m = tag.exec(inner)) {
    if (m[0] === '<item>') {
      if (depth === 0) from = m.index;
      depth++;
    } else if (m[0] === '</item>') {
      depth--;
      if (depth === 0) items.push(inner.slice(from, m.index + m[0].length));
    }
  }
  const rewritten = items.map((item) => {
    const top = item.replace(/<tagSet>[\s\S]*?<\/tagSet>/g, '');
    const snapshotId = /<snapshotId>([^<]+)<\/snapshotId>/.exec(top)?.[1];
    if (!snapshotId) return item;
    const change = edit({ snapshotId, volumeId: /<volumeId>([^<]+)<\/volumeId>/.exec(top)?.[1], status: /<status>([^<]+)<\/status>/.exec(top)?.[1] });
    if (!change) return item;
    let out = item.replace(/<progress>[^<]*<\/progress>/, `<progress>${change.progress}%</progress>`);
    out = /<status>[^<]*<\/status>/.test(top) ? out.replace(/<status>[^<]*<\/status>/, `<status>${change.status}</status>`) : out.replace(/<\/item>$/, `<status>${change.status}</status></item>`);
    return out;
  });
  return `${body.slice(0, start)}<snapshotSet>${rewritten.join('')}</snapshotSet>${body.slice(end + '</snapshotSet>'.length)}`;
}
