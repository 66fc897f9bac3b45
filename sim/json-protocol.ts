import { randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';

/**
 * The HTTP side shared by the simulation's local AWS services that speak the JSON protocol
 * (X-Amz-Target: <Prefix>.<Operation>, JSON body in and out): listening on a free local port,
 * reading the operation and body, and writing the reply with its request id and error type.
 */

export interface JsonProtocol {
  /** What X-Amz-Target starts with before the operation name, e.g. 'AmazonSSM.'. */
  readonly targetPrefix: string;
  /** The reply's content type, e.g. 'application/x-amz-json-1.1'. */
  readonly contentType: string;
  /** Calls by operation, counted as they arrive (a call whose body is not JSON counts too). */
  readonly counts: Map<string, number>;
  /** Answers one operation: its output, or a promise of it; what it throws goes to `error`. */
  dispatch(op: string, body: Record<string, unknown>): unknown;
  /** The status and `{ __type, message }` body of a failed operation. */
  error(op: string, err: unknown): { status: number; body: { __type: string; message: string } };
}

export class JsonProtocolServer {
  private server?: http.Server;
  url = '';

  constructor(private readonly protocol: JsonProtocol) {}

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections?.();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = undefined;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const { targetPrefix, counts } = this.protocol;
      const target = String(req.headers['x-amz-target'] ?? '');
      const op = target.startsWith(targetPrefix) ? target.slice(targetPrefix.length) : target;
      counts.set(op, (counts.get(op) ?? 0) + 1);
      let body: Record<string, unknown>;
      try {
        body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString('utf-8')) as Record<string, unknown>) : {};
      } catch {
        return this.reply(res, 400, { __type: 'SerializationException', message: 'body is not JSON' });
      }
      let out: Promise<unknown>;
      try {
        out = Promise.resolve(this.protocol.dispatch(op, body));
      } catch (err) {
        out = Promise.reject(err);
      }
      out.then(
        (result) => this.reply(res, 200, result),
        (err: unknown) => {
          const e = this.protocol.error(op, err);
          this.reply(res, e.status, e.body);
        },
      );
    });
  }

  private reply(res: http.ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    const headers: Record<string, string> = { 'content-type': this.protocol.contentType, 'x-amzn-requestid': randomUUID() };
    if (status >= 400) headers['x-amzn-errortype'] = (body as { __type: string }).__type;
    res.writeHead(status, headers);
    res.end(text);
  }
}
