import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';

import { JsonProtocolServer } from './json-protocol';

/**
 * The reboot-approval side of the simulation: a local Step Functions service for the task-token
 * callbacks (SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat), the approval endpoint served
 * as a local "function URL", and the desk that answers the open requests (automatically, at a
 * prompt, or from a browser) or lets them time out in simulated time.
 */

/** How the simulation answers approval requests. */
export type ApproveMode =
  | { readonly kind: 'all' }
  | { readonly kind: 'none' }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'apps'; readonly apps: readonly string[] }
  | { readonly kind: 'prompt' }
  | { readonly kind: 'external' };

/** `all|none|timeout|prompt|external|<app,app,...>` as the --approve flag takes it. */
export function parseApproveMode(value: string | undefined): ApproveMode {
  const v = (value ?? 'all').trim();
  if (v === 'all' || v === 'none' || v === 'timeout' || v === 'prompt' || v === 'external') return { kind: v };
  const apps = v.split(',').map((a) => a.trim()).filter(Boolean);
  if (apps.length === 0) throw new Error(`--approve ${JSON.stringify(value)}: expected all, none, timeout, prompt, external or a comma-separated list of applications`);
  return { kind: 'apps', apps };
}

export const describeMode = (m: ApproveMode): string => (m.kind === 'apps' ? m.apps.join(',') : m.kind);

/** The error a rejected / failed callback ends the task with: the workflow's Catch matches its name. */
export class TaskCallbackError extends Error {
  constructor(name: string, cause: string) {
    super(cause);
    this.name = name;
  }
}

interface TokenEntry {
  state: 'open' | 'succeeded' | 'failed' | 'timed-out';
  resolve(output: unknown): void;
  reject(err: Error): void;
}

class SfnError extends Error {
  constructor(public readonly type: string, message: string) {
    super(message);
  }
}

/**
 * A local service speaking Step Functions' JSON protocol (X-Amz-Target: AWSStepFunctions.<Op>) for
 * the callback operations; AWS_ENDPOINT_URL_SFN points the bundles' SFN client at it.
 */
export class SfnCallbackService {
  readonly counts = new Map<string, number>();
  private readonly tokens = new Map<string, TokenEntry>();
  private readonly server = new JsonProtocolServer({
    targetPrefix: 'AWSStepFunctions.',
    contentType: 'application/x-amz-json-1.0',
    counts: this.counts,
    dispatch: (op, body) => this.dispatch(op, body),
    error: (_op, err) => ({
      status: 400,
      body: err instanceof SfnError ? { __type: err.type, message: err.message } : { __type: 'SerializationException', message: 'body is not JSON' },
    }),
  });
  url = '';

  async start(): Promise<string> {
    this.url = await this.server.start();
    return this.url;
  }

  stop(): Promise<void> {
    return this.server.stop();
  }

  /** A new task token and the promise the callback settles. */
  open(): { token: string; result: Promise<unknown> } {
    // Real tokens are long opaque strings; the endpoint treats them as such.
    const token = `AQCsim${randomBytes(96).toString('base64url')}`;
    let resolve!: (v: unknown) => void;
    let reject!: (e: Error) => void;
    const result = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // The task may end by timeout before anyone listens to a rejection.
    result.catch(() => undefined);
    this.tokens.set(token, { state: 'open', resolve, reject });
    return { token, result };
  }

  /** Ends an open task with States.Timeout (its TimeoutSeconds passed): later callbacks get TaskTimedOut. */
  timeOut(token: string, seconds: number): void {
    const t = this.tokens.get(token);
    if (!t || t.state !== 'open') return;
    t.state = 'timed-out';
    t.reject(new TaskCallbackError('States.Timeout', `the task did not get a callback within ${seconds} s (TimeoutSecondsPath)`));
  }

  isOpen(token: string): boolean {
    return this.tokens.get(token)?.state === 'open';
  }

  private entry(body: Record<string, unknown>): TokenEntry {
    const token = String(body.taskToken ?? '');
    if (!token) throw new SfnError('ValidationException', "1 validation error detected: Value null at 'taskToken' failed to satisfy constraint: Member must not be null");
    const t = this.tokens.get(token);
    if (!t) throw new SfnError('InvalidToken', 'Invalid token');
    if (t.state === 'timed-out') throw new SfnError('TaskTimedOut', 'Task Timed Out');
    if (t.state !== 'open') throw new SfnError('TaskDoesNotExist', 'Task does not exist anymore');
    return t;
  }

  private dispatch(op: string, body: Record<string, unknown>): unknown {
    switch (op) {
      case 'SendTaskSuccess': {
        const t = this.entry(body);
        let output: unknown;
        try {
          output = JSON.parse(String(body.output ?? ''));
        } catch {
          throw new SfnError('InvalidOutput', 'Invalid output: not JSON');
        }
        t.state = 'succeeded';
        t.resolve(output);
        return {};
      }
      case 'SendTaskFailure': {
        const t = this.entry(body);
        t.state = 'failed';
        t.reject(new TaskCallbackError(String(body.error ?? ''), String(body.cause ?? '')));
        return {};
      }
      case 'SendTaskHeartbeat':
        this.entry(body);
        return {};
      default:
        throw new SfnError('UnknownOperationException', `the local Step Functions service does not implement ${op}`);
    }
  }
}

/** What a Lambda function URL passes to its function (payload format 2.0). */
export interface FunctionUrlEventV2 {
  readonly version: '2.0';
  readonly routeKey: '$default';
  readonly rawPath: string;
  readonly rawQueryString: string;
  readonly headers: Record<string, string>;
  readonly queryStringParameters?: Record<string, string>;
  readonly requestContext: {
    readonly accountId: string;
    readonly apiId: string;
    readonly domainName: string;
    readonly requestId: string;
    readonly time: string;
    readonly timeEpoch: number;
    readonly http: { readonly method: string; readonly path: string; readonly protocol: string; readonly sourceIp: string; readonly userAgent: string };
  };
  readonly body?: string;
  readonly isBase64Encoded: boolean;
}

export interface FunctionUrlResponse {
  readonly statusCode: number;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly isBase64Encoded?: boolean;
}

export interface UrlRequest {
  readonly method: string;
  /** Path and query, e.g. /?id=...&sig=... */
  readonly url: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  readonly sourceIp: string;
}

const TEXT_TYPES = /^(text\/|application\/(json|x-www-form-urlencoded|xml))/i;

/** The event a function URL builds from an HTTP request (text bodies as is, others base64). */
export function functionUrlEvent(req: UrlRequest, host: string): FunctionUrlEventV2 {
  const u = new URL(req.url, 'http://local');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(',') : v;
  const query: Record<string, string> = {};
  for (const [k, v] of u.searchParams) query[k] = query[k] === undefined ? v : `${query[k]},${v}`;
  const text = TEXT_TYPES.test(headers['content-type'] ?? '') || req.body.length === 0;
  const now = Date.now();
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: u.pathname,
    rawQueryString: u.search.replace(/^\?/, ''),
    headers,
    ...(Object.keys(query).length ? { queryStringParameters: query } : {}),
    requestContext: {
      accountId: 'anonymous',
      apiId: 'sim',
      domainName: host,
      requestId: randomUUID(),
      time: new Date(now).toUTCString(),
      timeEpoch: now,
      http: { method: req.method.toUpperCase(), path: u.pathname, protocol: 'HTTP/1.1', sourceIp: req.sourceIp, userAgent: headers['user-agent'] ?? '' },
    },
    ...(req.body.length ? { body: text ? req.body.toString('utf-8') : req.body.toString('base64') } : {}),
    isBase64Encoded: !text,
  };
}

/**
 * The approval endpoint's function URL, locally: HTTP requests become function URL events for the
 * bundled handler, and its result becomes the HTTP response, so links in messages open in a browser.
 */
export async function serveFunctionUrl(
  handler: (event: FunctionUrlEventV2) => Promise<FunctionUrlResponse>,
  onRequest: (method: string, status: number) => void = () => undefined,
): Promise<{ url: string; stop(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const event = functionUrlEvent({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks), sourceIp: req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '127.0.0.1' }, String(req.headers.host ?? ''));
      handler(event).then(
        (out) => {
          const body = out.body === undefined ? Buffer.alloc(0) : Buffer.from(out.body, out.isBase64Encoded ? 'base64' : 'utf-8');
          res.writeHead(out.statusCode, { ...(out.headers ?? {}), 'content-length': String(body.length) });
          res.end(body);
          onRequest(event.requestContext.http.method, out.statusCode);
        },
        (err: unknown) => {
          // A function error: a function URL answers 502 without the details.
          res.writeHead(502, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ message: 'Internal Server Error' }));
          onRequest(event.requestContext.http.method, 502);
          if (process.env.PP_SIM_DEBUG) console.error('[sim] approval endpoint failed', err);
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** The signed link of an approval request, from the message that announced it. */
export function linkOf(message: string, endpointUrl: string, runId: string, groupId: string): string | undefined {
  const base = endpointUrl.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const m of message.matchAll(new RegExp(`${base}\\?[^\\s"'<>]+`, 'g'))) {
    const q = new URL(m[0]).searchParams;
    if (q.get('run') === runId && q.get('group') === groupId && q.get('sig')) return m[0];
  }
  return undefined;
}

/** One open approval request of the running execution. */
export interface PendingApproval {
  readonly runId: string;
  readonly groupId: string;
  readonly application: string;
  readonly approver: string;
  readonly instanceIds: string[];
  readonly instanceNames: string[];
  readonly link?: string;
  readonly subject?: string;
  /** Simulated epoch ms at which the wait task times out. */
  readonly deadline: number;
  readonly timeoutSeconds: number;
}

export type Answer = 'approve' | 'reject' | 'timeout';

/** What happened to one approval request (SimResult.approvals). */
export interface ApprovalOutcome extends PendingApproval {
  /** The answer given (through the endpoint) or 'timeout'. */
  answer?: Answer;
  /** HTTP status of the endpoint's answer to the decision POST. */
  endpointStatus?: number;
  endpointTitle?: string;
  /** 'approved' | 'rejected' | 'timed-out' as the wait task ended. */
  outcome?: string;
  /** Who answered: the simulation's policy, the prompt, or the served endpoint (browser). */
  via?: 'policy' | 'prompt' | 'served-endpoint' | 'timeout';
}

/**
 * Tracks whether the execution can still progress without an approval answer: task handlers
 * running, or one started lately (the engine's Wait states take a few real milliseconds).
 */
export class Activity {
  private active = 0;
  private last = Date.now();
  constructor(private readonly realNow: () => number) {
    this.last = realNow();
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    this.active++;
    this.last = this.realNow();
    try {
      return await fn();
    } finally {
      this.active--;
      this.last = this.realNow();
    }
  }

  touch(): void {
    this.last = this.realNow();
  }

  /** Nothing ran for `quietMs` real milliseconds. */
  quiet(quietMs: number): boolean {
    return this.active === 0 && this.realNow() - this.last >= quietMs;
  }
}

export interface DeskDeps {
  readonly mode: ApproveMode;
  readonly sfn: SfnCallbackService;
  readonly activity: Activity;
  /** Simulated epoch ms. */
  readonly simNow: () => number;
  readonly realNow: () => number;
  /** Moves the simulation (SSM service, clock) forward to simulated epoch ms. */
  readonly advanceTo: (ms: number) => Promise<void>;
  /** Posts the decision to the approval endpoint as the page's button would. */
  readonly decide: (p: PendingApproval, answer: 'approve' | 'reject', via: string) => Promise<{ status: number; title: string }>;
  /** The interactive prompt (--approve prompt): one answer per pending group id. */
  readonly ask?: (pending: PendingApproval[]) => Promise<Record<string, Answer>>;
  /** external / prompt: real ms a request stays open for an answer before the simulated timeout may fire. */
  readonly externalWaitMs: number;
  readonly onPending?: (p: PendingApproval) => void;
  readonly onOutcome?: (o: ApprovalOutcome) => void;
}

/** Real ms without any task running before the desk calls the execution idle. */
const QUIET_MS = 400;
const TICK_MS = 50;

interface Waiter {
  readonly token: string;
  readonly outcome: ApprovalOutcome;
  readonly since: number;
  asked: boolean;
}

/**
 * Answers the open approval requests. Policy modes answer as soon as a request waits; a request
 * left open times out in SIMULATED time: when its deadline passes on the clock, or when nothing
 * else can progress (the clock then jumps to the deadline), as an unanswered request does in AWS.
 */
export class ApprovalDesk {
  readonly outcomes: ApprovalOutcome[] = [];
  private readonly waiters = new Map<string, Waiter>();
  private timer?: NodeJS.Timeout;
  private busy = false;
  private failure?: Error;

  constructor(private readonly d: DeskDeps) {}

  /** Registers the request of a wait task and resolves / rejects as the callback (or timeout) ends it. */
  async wait(token: string, result: Promise<unknown>, p: PendingApproval): Promise<unknown> {
    const outcome: ApprovalOutcome = { ...p };
    this.outcomes.push(outcome);
    const w: Waiter = { token, outcome, since: this.d.realNow(), asked: false };
    this.waiters.set(token, w);
    this.d.onPending?.(p);
    this.ensureTimer();
    const answer = this.policyAnswer(p);
    if (answer) {
      w.asked = true;
      outcome.answer = answer;
      outcome.via = answer === 'timeout' ? undefined : 'policy';
      if (answer !== 'timeout') void this.answer(w, answer, 'policy');
    }
    try {
      const out = await result;
      outcome.outcome = 'approved';
      return out;
    } catch (err) {
      const name = (err as Error).name;
      outcome.outcome = name === 'States.Timeout' ? 'timed-out' : name === 'ApprovalRejected' ? 'rejected' : name;
      if (name === 'States.Timeout') {
        outcome.answer ??= 'timeout';
        outcome.via ??= 'timeout';
      }
      throw err;
    } finally {
      this.waiters.delete(token);
      this.d.onOutcome?.(outcome);
      if (this.waiters.size === 0) this.stopTimer();
    }
  }

  /** Marks the request answered from outside (a browser on the served endpoint). */
  answeredExternally(groupId: string, runId: string, answer: Answer): void {
    // The wait may already have ended: SendTaskSuccess settles it before the endpoint answers.
    const o = [...this.outcomes].reverse().find((x) => x.groupId === groupId && x.runId === runId);
    if (o && (!o.answer || o.via === 'timeout')) {
      o.answer = answer;
      o.via = 'served-endpoint';
    }
  }

  stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private policyAnswer(p: PendingApproval): Answer | undefined {
    switch (this.d.mode.kind) {
      case 'all':
        return 'approve';
      case 'none':
        return 'reject';
      case 'timeout':
        return 'timeout';
      case 'apps':
        return this.d.mode.apps.includes(p.application) ? 'approve' : 'reject';
      default:
        return undefined;
    }
  }

  private async answer(w: Waiter, answer: 'approve' | 'reject', via: 'policy' | 'prompt'): Promise<void> {
    try {
      const res = await this.d.activity.run(() => this.d.decide(w.outcome, answer, via));
      w.outcome.endpointStatus = res.status;
      w.outcome.endpointTitle = res.title;
      w.outcome.via = via;
    } catch (err) {
      this.failure = err as Error;
      w.outcome.endpointTitle = `decision failed: ${(err as Error).message}`;
    }
  }

  private ensureTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      this.tick()
        .catch((err: unknown) => (this.failure = err as Error))
        .finally(() => (this.busy = false));
    }, TICK_MS);
    this.timer.unref?.();
  }

  private async tick(): Promise<void> {
    const open = [...this.waiters.values()].filter((w) => this.d.sfn.isOpen(w.token));
    if (open.length === 0) return;
    // The clock moved past a deadline (other groups waited / rebooted meanwhile).
    for (const w of open) if (this.d.simNow() >= w.outcome.deadline) this.d.sfn.timeOut(w.token, w.outcome.timeoutSeconds);
    const still = open.filter((w) => this.d.sfn.isOpen(w.token));
    if (still.length === 0 || !this.d.activity.quiet(QUIET_MS)) return;

    if (this.d.mode.kind === 'prompt') {
      const unasked = still.filter((w) => !w.asked);
      if (unasked.length) {
        if (!this.d.ask) throw new Error('--approve prompt needs an interactive prompt');
        for (const w of unasked) w.asked = true;
        const answers = await this.d.ask(unasked.map((w) => w.outcome));
        for (const w of unasked) {
          const a = answers[w.outcome.groupId] ?? 'timeout';
          w.outcome.answer = a;
          if (a !== 'timeout') await this.answer(w, a, 'prompt');
        }
        this.d.activity.touch();
        return;
      }
    }
    if (this.d.mode.kind === 'external' && still.some((w) => this.d.realNow() - w.since < this.d.externalWaitMs)) return;
    // Nothing else can progress: the earliest request times out, at its deadline.
    const first = still.sort((a, b) => a.outcome.deadline - b.outcome.deadline)[0];
    await this.d.advanceTo(first.outcome.deadline);
    this.d.sfn.timeOut(first.token, first.outcome.timeoutSeconds);
    this.d.activity.touch();
  }

  /** An error of the desk itself (a decision that could not be posted), for the run's result. */
  get error(): Error | undefined {
    return this.failure;
  }
}
