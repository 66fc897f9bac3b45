import { randomUUID } from 'node:crypto';

import { JsonProtocolServer } from './json-protocol';

/**
 * A local service speaking SSM's JSON protocol (X-Amz-Target: AmazonSSM.<Operation>), for the
 * operations the Lambdas call. moto's SSM cannot be used: SendCommand with one instance id targets
 * every instance, and it has no ListCommandInvocations nor DescribeInstanceInformation.
 * Invocations move Pending -> InProgress -> Success / Failed / TimedOut / Undeliverable in
 * SIMULATED time, driven by `advance()` (the engine runner calls it after each Wait).
 */

export type InvocationStatus = 'Pending' | 'InProgress' | 'Success' | 'Failed' | 'TimedOut' | 'Cancelled' | 'Undeliverable' | 'Delayed';
const TERMINAL = new Set<InvocationStatus>(['Success', 'Failed', 'TimedOut', 'Cancelled', 'Undeliverable']);

export interface DocumentParameterSpec {
  readonly type: string;
  readonly allowedPattern?: string;
  readonly default?: unknown;
}

export interface SsmDocument {
  readonly name: string;
  readonly parameters: Record<string, DocumentParameterSpec>;
  /** The Linux script as the agent would run it (the aws:runShellScript runCommand lines). */
  readonly linuxScript?: string;
  readonly windowsScript?: string;
  readonly content: unknown;
}

export interface Invocation {
  readonly commandId: string;
  readonly instanceId: string;
  status: InvocationStatus;
  statusDetails: string;
  requestedAt: number;
  startedAt?: number;
  endedAt?: number;
  /** Simulated ms at which the agent's work is done (set when it goes InProgress). */
  dueAt?: number;
  responseCode: number;
  stdout: string;
  stderr: string;
}

export interface Command {
  readonly commandId: string;
  readonly documentName: string;
  readonly instanceIds: string[];
  readonly parameters: Record<string, string[]>;
  readonly requestedAt: number;
  readonly timeoutSeconds: number;
  readonly maxConcurrency: string;
  readonly maxErrors: string;
  readonly outputBucket?: string;
  readonly outputPrefix?: string;
  readonly comment: string;
  readonly invocations: Map<string, Invocation>;
}

/** What the service needs from the simulated fleet and its agents. */
export interface AgentHost {
  /** 'Online' | 'ConnectionLost' | undefined (not managed / unknown). */
  pingStatus(instanceId: string): Promise<string | undefined>;
  describe(instanceId: string): { platform: 'Linux' | 'Windows'; platformName: string; platformVersion: string; agentVersion: string; name: string } | undefined;
  /** Simulated seconds the agent needs before running the document (the stage duration). */
  durationSeconds(instanceId: string, cmd: Command): number;
  /** Runs the document on the instance; resolves with the script's exit code and output. */
  execute(instanceId: string, cmd: Command, doc: SsmDocument): Promise<{ exitCode: number; stdout: string; stderr: string }>;
  /** Simulated ms of the agent's last ping (default: now); a rebooting agent's ping stays at its reboot. */
  lastPing?(instanceId: string): number | undefined;
  /** Called when a command is accepted (faults such as termination hook here). */
  onSendCommand?(cmd: Command): Promise<void>;
}

export interface ThrottleRule {
  /** Operation to throttle, e.g. SendCommand. */
  readonly operation: string;
  /** How many calls in a row get ThrottlingException before calls pass again. */
  readonly count: number;
}

export interface SsmLogEntry {
  readonly at: number;
  readonly operation: string;
  readonly commandId?: string;
  readonly documentName?: string;
  readonly instanceIds?: string[];
  readonly stage?: string;
  readonly error?: string;
  readonly calendarNames?: string[];
  readonly state?: string;
}

/** A simulated SSM Change Calendar: its state at any time of the run. */
export interface CalendarSpec {
  readonly state: 'OPEN' | 'CLOSED';
  readonly nextTransitionTime?: string;
}

class SsmError extends Error {
  constructor(public readonly type: string, message: string, public readonly status = 400) {
    super(message);
  }
}

const MAX_SEND_TARGETS = 50;
/** Simulated seconds between SendCommand and the agent picking the command up. */
const DELIVERY_SECONDS = 2;

export class SsmService {
  readonly commands = new Map<string, Command>();
  readonly log: SsmLogEntry[] = [];
  readonly counts = new Map<string, number>();
  throttled = 0;
  /** Change calendars GetCalendarState knows, by name: any other name is InvalidDocument, as in SSM. */
  readonly calendars = new Map<string, CalendarSpec>();
  /** Parameters GetParameter serves, by name (e.g. /aws/reference/secretsmanager/<secret id>). */
  readonly parameters = new Map<string, { readonly value: string; readonly type: 'String' | 'SecureString' }>();
  private readonly server = new JsonProtocolServer({
    targetPrefix: 'AmazonSSM.',
    contentType: 'application/x-amz-json-1.1',
    counts: this.counts,
    dispatch: (op, body) => this.dispatch(op, body),
    error: (op, err) => {
      if (err instanceof SsmError) {
        this.log.push({ at: this.now(), operation: op, error: err.type });
        return { status: err.status, body: { __type: err.type, message: err.message } };
      }
      return { status: 500, body: { __type: 'InternalServerError', message: String(err) } };
    },
  });
  private throttleLeft: Map<string, number>;
  private running = 0;
  private lock: Promise<void> = Promise.resolve();
  url = '';

  constructor(
    private readonly documents: Map<string, SsmDocument>,
    private readonly host: AgentHost,
    private readonly now: () => number,
    throttles: readonly ThrottleRule[] = [],
    /** Agent scripts running at the same time (the host's cores). */
    private readonly scriptConcurrency = 2,
  ) {
    this.throttleLeft = new Map(throttles.map((t) => [t.operation, t.count]));
  }

  async start(): Promise<string> {
    this.url = await this.server.start();
    return this.url;
  }

  stop(): Promise<void> {
    return this.server.stop();
  }

  /** Instances that got at least one invocation of a document with Stage=<stage>, with the first request time. */
  invocations(): Invocation[] {
    return [...this.commands.values()].flatMap((c) => [...c.invocations.values()]);
  }

  private async dispatch(op: string, body: Record<string, unknown>): Promise<unknown> {
    const left = this.throttleLeft.get(op);
    if (left !== undefined && left > 0) {
      this.throttleLeft.set(op, left - 1);
      this.throttled++;
      throw new SsmError('ThrottlingException', 'Rate exceeded');
    }
    switch (op) {
      case 'SendCommand':
        return this.sendCommand(body);
      case 'ListCommandInvocations':
        return this.listCommandInvocations(body);
      case 'GetCommandInvocation':
        return this.getCommandInvocation(body);
      case 'ListCommands':
        return this.listCommands(body);
      case 'CancelCommand':
        return this.cancelCommand(body);
      case 'DescribeInstanceInformation':
        return this.describeInstanceInformation(body);
      case 'GetCalendarState':
        return this.getCalendarState(body);
      case 'GetParameter':
        return this.getParameter(body);
      default:
        throw new SsmError('InvalidAction', `the local SSM service does not implement ${op}`);
    }
  }

  private async sendCommand(body: Record<string, unknown>): Promise<unknown> {
    const documentName = String(body.DocumentName ?? '');
    const doc = this.documents.get(documentName);
    if (!doc) throw new SsmError('InvalidDocument', `Document ${documentName} does not exist`);
    const ids = (body.InstanceIds as string[] | undefined) ?? [];
    if (body.Targets) throw new SsmError('InvalidParameters', 'Targets is not supported by the local SSM service; use InstanceIds');
    if (ids.length === 0) throw new SsmError('InvalidParameters', 'InstanceIds must contain at least one instance id');
    if (ids.length > MAX_SEND_TARGETS) {
      throw new SsmError('ValidationException', `1 validation error detected: Value at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to ${MAX_SEND_TARGETS}`);
    }
    if (new Set(ids).size !== ids.length) throw new SsmError('DuplicateInstanceId', 'Instance ids are duplicated');
    for (const id of ids) if (!this.host.describe(id)) throw new SsmError('InvalidInstanceId', `Instance ${id} is not a managed instance`);
    const parameters = validateParameters(doc, (body.Parameters as Record<string, string[]>) ?? {});
    const timeoutSeconds = Number(body.TimeoutSeconds ?? 3600);
    if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 30 || timeoutSeconds > 2592000) {
      throw new SsmError('InvalidParameters', 'TimeoutSeconds must be an integer between 30 and 2592000');
    }
    const comment = String(body.Comment ?? '');
    if (comment.length > 100) throw new SsmError('ValidationException', 'Comment must have length less than or equal to 100');
    const now = this.now();
    const cmd: Command = {
      commandId: randomUUID(),
      documentName,
      instanceIds: ids,
      parameters,
      requestedAt: now,
      timeoutSeconds,
      maxConcurrency: String(body.MaxConcurrency ?? '50'),
      maxErrors: String(body.MaxErrors ?? '0'),
      outputBucket: body.OutputS3BucketName as string | undefined,
      outputPrefix: body.OutputS3KeyPrefix as string | undefined,
      comment,
      invocations: new Map(),
    };
    for (const id of ids) {
      cmd.invocations.set(id, { commandId: cmd.commandId, instanceId: id, status: 'Pending', statusDetails: 'Pending', requestedAt: now, responseCode: -1, stdout: '', stderr: '' });
    }
    this.commands.set(cmd.commandId, cmd);
    this.log.push({ at: now, operation: 'SendCommand', commandId: cmd.commandId, documentName, instanceIds: [...ids], stage: parameters.Stage?.[0] });
    await this.host.onSendCommand?.(cmd);
    return { Command: this.commandView(cmd) };
  }

  private commandView(cmd: Command): Record<string, unknown> {
    const inv = [...cmd.invocations.values()];
    const count = (pred: (i: Invocation) => boolean): number => inv.filter(pred).length;
    const completed = count((i) => TERMINAL.has(i.status));
    const errors = count((i) => i.status === 'Failed' || i.status === 'TimedOut');
    const status = completed < inv.length ? (count((i) => i.status !== 'Pending') ? 'InProgress' : 'Pending') : errors ? 'Failed' : 'Success';
    return {
      CommandId: cmd.commandId,
      DocumentName: cmd.documentName,
      DocumentVersion: '$DEFAULT',
      Comment: cmd.comment,
      Parameters: cmd.parameters,
      InstanceIds: cmd.instanceIds,
      RequestedDateTime: cmd.requestedAt / 1000,
      ExpiresAfter: (cmd.requestedAt + cmd.timeoutSeconds * 1000) / 1000,
      Status: status,
      StatusDetails: status,
      OutputS3BucketName: cmd.outputBucket,
      OutputS3KeyPrefix: cmd.outputPrefix,
      MaxConcurrency: cmd.maxConcurrency,
      MaxErrors: cmd.maxErrors,
      TargetCount: inv.length,
      CompletedCount: completed,
      ErrorCount: errors,
      DeliveryTimedOutCount: count((i) => i.statusDetails === 'DeliveryTimedOut'),
      TimeoutSeconds: cmd.timeoutSeconds,
    };
  }

  private invocationView(cmd: Command, inv: Invocation, details: boolean): Record<string, unknown> {
    const d = this.host.describe(inv.instanceId);
    const out: Record<string, unknown> = {
      CommandId: cmd.commandId,
      InstanceId: inv.instanceId,
      InstanceName: d?.name ?? '',
      Comment: cmd.comment,
      DocumentName: cmd.documentName,
      DocumentVersion: '$DEFAULT',
      RequestedDateTime: inv.requestedAt / 1000,
      Status: inv.status,
      StatusDetails: inv.statusDetails,
      StandardOutputUrl: '',
      StandardErrorUrl: '',
    };
    if (details) {
      out.CommandPlugins = [
        {
          Name: d?.platform === 'Windows' ? 'aws:runPowerShellScript' : 'aws:runShellScript',
          Status: inv.status,
          StatusDetails: inv.statusDetails,
          ResponseCode: inv.responseCode,
          ResponseStartDateTime: inv.startedAt !== undefined ? inv.startedAt / 1000 : undefined,
          ResponseFinishDateTime: inv.endedAt !== undefined ? inv.endedAt / 1000 : undefined,
          Output: truncate(inv.stdout, 2500),
          OutputS3BucketName: cmd.outputBucket,
          OutputS3KeyPrefix: cmd.outputPrefix,
        },
      ];
    }
    return out;
  }

  private listCommandInvocations(body: Record<string, unknown>): unknown {
    const cmds = body.CommandId ? [this.commands.get(String(body.CommandId))].filter((c): c is Command => !!c) : [...this.commands.values()];
    if (body.CommandId && cmds.length === 0) throw new SsmError('InvalidCommandId', `Command ${String(body.CommandId)} does not exist`);
    const all = cmds.flatMap((c) =>
      [...c.invocations.values()].filter((i) => !body.InstanceId || i.instanceId === body.InstanceId).map((i) => this.invocationView(c, i, body.Details === true)),
    );
    return page(all, 'CommandInvocations', body, 50);
  }

  private getCommandInvocation(body: Record<string, unknown>): unknown {
    const cmd = this.commands.get(String(body.CommandId ?? ''));
    if (!cmd) throw new SsmError('InvalidCommandId', `Command ${String(body.CommandId)} does not exist`);
    const inv = cmd.invocations.get(String(body.InstanceId ?? ''));
    if (!inv) throw new SsmError('InvocationDoesNotExist', `No invocation of ${cmd.commandId} on ${String(body.InstanceId)}`);
    return {
      CommandId: cmd.commandId,
      InstanceId: inv.instanceId,
      Comment: cmd.comment,
      DocumentName: cmd.documentName,
      DocumentVersion: '$DEFAULT',
      PluginName: this.host.describe(inv.instanceId)?.platform === 'Windows' ? 'aws:runPowerShellScript' : 'aws:runShellScript',
      ResponseCode: inv.responseCode,
      ExecutionStartDateTime: inv.startedAt ? new Date(inv.startedAt).toISOString() : '',
      ExecutionEndDateTime: inv.endedAt ? new Date(inv.endedAt).toISOString() : '',
      Status: inv.status,
      StatusDetails: inv.statusDetails,
      StandardOutputContent: truncate(inv.stdout, 24000),
      StandardErrorContent: truncate(inv.stderr, 8000),
    };
  }

  private listCommands(body: Record<string, unknown>): unknown {
    let cmds = [...this.commands.values()];
    if (body.CommandId) {
      cmds = cmds.filter((c) => c.commandId === body.CommandId);
      if (cmds.length === 0) throw new SsmError('InvalidCommandId', `Command ${String(body.CommandId)} does not exist`);
    }
    if (body.InstanceId) cmds = cmds.filter((c) => c.invocations.has(String(body.InstanceId)));
    return page(cmds.map((c) => this.commandView(c)), 'Commands', body, 50);
  }

  private cancelCommand(body: Record<string, unknown>): unknown {
    const cmd = this.commands.get(String(body.CommandId ?? ''));
    if (!cmd) throw new SsmError('InvalidCommandId', `Command ${String(body.CommandId)} does not exist`);
    const ids = (body.InstanceIds as string[] | undefined) ?? cmd.instanceIds;
    const now = this.now();
    for (const id of ids) {
      const inv = cmd.invocations.get(id);
      if (inv && !TERMINAL.has(inv.status)) {
        inv.status = 'Cancelled';
        inv.statusDetails = 'Cancelled';
        inv.endedAt = now;
      }
    }
    this.log.push({ at: now, operation: 'CancelCommand', commandId: cmd.commandId, instanceIds: ids });
    return {};
  }

  private getParameter(body: Record<string, unknown>): unknown {
    const name = String(body.Name ?? '');
    if (!name) throw new SsmError('ValidationException', "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null");
    // SSM refuses a Secrets Manager reference without decryption.
    if (name.startsWith('/aws/reference/secretsmanager/') && body.WithDecryption !== true) {
      throw new SsmError('ValidationException', 'WithDecryption flag must be True for retrieving a Secret Manager secret.');
    }
    const p = this.parameters.get(name);
    if (!p) throw new SsmError('ParameterNotFound', `Parameter ${name} not found.`);
    this.log.push({ at: this.now(), operation: 'GetParameter' });
    return {
      Parameter: {
        Name: name,
        Type: p.type,
        Value: p.value,
        Version: 1,
        LastModifiedDate: this.now() / 1000,
        ARN: `arn:aws:ssm:local:123456789012:parameter${name.startsWith('/') ? '' : '/'}${name}`,
        DataType: 'text',
      },
    };
  }

  private getCalendarState(body: Record<string, unknown>): unknown {
    const names = body.CalendarNames;
    if (!Array.isArray(names) || names.length === 0) throw new SsmError('ValidationException', "1 validation error detected: Value null at 'calendarNames' failed to satisfy constraint: Member must not be null");
    const atTime = body.AtTime === undefined ? new Date(this.now()).toISOString() : String(body.AtTime);
    if (Number.isNaN(Date.parse(atTime))) throw new SsmError('InvalidDocumentType', `AtTime ${atTime} is not an ISO 8601 time`);
    let closed = false;
    const transitions: string[] = [];
    for (const raw of names.map(String)) {
      // A calendar is named by its document name or its ARN (arn:aws:ssm:<region>:<account>:document/<name>).
      const name = raw.replace(/^arn:[^:]+:ssm:[^:]*:[^:]*:document\//, '');
      const cal = this.calendars.get(name);
      if (!cal) throw new SsmError('InvalidDocument', `Calendar ${raw} does not exist`);
      if (cal.state === 'CLOSED') closed = true;
      if (cal.nextTransitionTime) transitions.push(cal.nextTransitionTime);
    }
    this.log.push({ at: this.now(), operation: 'GetCalendarState', calendarNames: names.map(String), state: closed ? 'CLOSED' : 'OPEN' });
    return { State: closed ? 'CLOSED' : 'OPEN', AtTime: atTime, ...(transitions.length ? { NextTransitionTime: transitions.sort()[0] } : {}) };
  }

  private async describeInstanceInformation(body: Record<string, unknown>): Promise<unknown> {
    let ids: string[] | undefined = body.InstanceInformationFilterList
      ? (body.InstanceInformationFilterList as { key: string; valueSet: string[] }[]).find((f) => f.key === 'InstanceIds')?.valueSet
      : undefined;
    for (const f of (body.Filters as { Key: string; Values: string[] }[] | undefined) ?? []) {
      if (f.Key === 'InstanceIds') ids = f.Values;
    }
    const known = ids ?? this.host.allInstanceIds?.() ?? [];
    const list: Record<string, unknown>[] = [];
    for (const id of known) {
      const d = this.host.describe(id);
      if (!d) continue;
      const ping = await this.host.pingStatus(id);
      if (!ping) continue;
      list.push({
        InstanceId: id,
        PingStatus: ping,
        LastPingDateTime: (this.host.lastPing?.(id) ?? this.now()) / 1000,
        AgentVersion: d.agentVersion,
        IsLatestVersion: false,
        PlatformType: d.platform,
        PlatformName: d.platformName,
        PlatformVersion: d.platformVersion,
        ResourceType: 'EC2Instance',
        ComputerName: d.name,
      });
    }
    return page(list, 'InstanceInformationList', body, 50);
  }

  /**
   * Moves every invocation forward to simulated time `until`: delivers pending ones, runs the
   * agents' work that is due (in due order, at most `scriptConcurrency` scripts at once), applies
   * timeouts. Serialized, so concurrent callers (batches) share one timeline.
   */
  advance(until: number, setClock: (ms: number) => void): Promise<void> {
    const next = this.lock.then(() => this.advanceLocked(until, setClock));
    this.lock = next.catch(() => undefined);
    return next;
  }

  private async advanceLocked(until: number, setClock: (ms: number) => void): Promise<void> {
    for (;;) {
      // Deliver what is due, start work as MaxConcurrency allows.
      for (const cmd of this.commands.values()) await this.deliver(cmd, until);
      const due = this.invocations()
        .filter((i) => i.status === 'InProgress' && i.dueAt !== undefined && i.dueAt <= until)
        .sort((a, b) => a.dueAt! - b.dueAt! || a.instanceId.localeCompare(b.instanceId));
      if (due.length === 0) break;
      const runs: Promise<void>[] = [];
      const queue = [...due];
      const worker = async (): Promise<void> => {
        for (let inv = queue.shift(); inv; inv = queue.shift()) {
          setClock(inv.dueAt!);
          await this.finish(inv);
        }
      };
      for (let i = 0; i < Math.min(this.scriptConcurrency, queue.length); i++) runs.push(worker());
      await Promise.all(runs);
    }
    setClock(until);
  }

  private async deliver(cmd: Command, until: number): Promise<void> {
    const limit = concurrencyLimit(cmd.maxConcurrency, cmd.invocations.size);
    let inProgress = [...cmd.invocations.values()].filter((i) => i.status === 'InProgress').length;
    for (const inv of cmd.invocations.values()) {
      if (inv.status !== 'Pending') continue;
      const deliverAt = inv.requestedAt + DELIVERY_SECONDS * 1000;
      if (deliverAt > until) continue;
      const ping = await this.host.pingStatus(inv.instanceId);
      if (ping !== 'Online') {
        if (ping === undefined) {
          inv.status = 'Undeliverable';
          inv.statusDetails = 'Undeliverable';
          inv.endedAt = deliverAt;
        } else if (until >= cmd.requestedAt + cmd.timeoutSeconds * 1000) {
          inv.status = 'TimedOut';
          inv.statusDetails = 'DeliveryTimedOut';
          inv.endedAt = cmd.requestedAt + cmd.timeoutSeconds * 1000;
        }
        continue;
      }
      if (inProgress >= limit) continue;
      inProgress++;
      inv.status = 'InProgress';
      inv.statusDetails = 'InProgress';
      inv.startedAt = Math.max(deliverAt, this.now());
      inv.dueAt = inv.startedAt + this.host.durationSeconds(inv.instanceId, cmd) * 1000;
    }
  }

  private async finish(inv: Invocation): Promise<void> {
    const cmd = this.commands.get(inv.commandId)!;
    if (inv.status !== 'InProgress') return;
    const execTimeout = Number(cmd.parameters.ExecutionTimeout?.[0] ?? 3600) * 1000;
    if ((await this.host.pingStatus(inv.instanceId)) === undefined) {
      inv.status = 'Undeliverable';
      inv.statusDetails = 'Undeliverable';
      inv.endedAt = this.now();
      return;
    }
    if (inv.dueAt! - inv.startedAt! > execTimeout) {
      inv.status = 'TimedOut';
      inv.statusDetails = 'ExecutionTimedOut';
      inv.endedAt = inv.startedAt! + execTimeout;
      return;
    }
    this.running++;
    try {
      const doc = this.documents.get(cmd.documentName)!;
      const r = await this.host.execute(inv.instanceId, cmd, doc);
      inv.stdout = r.stdout;
      inv.stderr = r.stderr;
      inv.responseCode = r.exitCode;
      inv.status = r.exitCode === 0 ? 'Success' : 'Failed';
      inv.statusDetails = inv.status;
    } catch (err) {
      inv.stderr = String(err);
      inv.responseCode = 1;
      inv.status = 'Failed';
      inv.statusDetails = 'Failed';
    } finally {
      this.running--;
      inv.endedAt = this.now();
    }
  }
}

export interface AgentHost {
  allInstanceIds?(): string[];
}

function truncate(s: string, n: number): string {
  return s.length > n ? s.slice(0, n) : s;
}

function page<T>(items: T[], key: string, body: Record<string, unknown>, defaultMax: number): Record<string, unknown> {
  const start = body.NextToken ? Number(body.NextToken) : 0;
  const max = Number(body.MaxResults ?? defaultMax);
  const slice = items.slice(start, start + max);
  const out: Record<string, unknown> = { [key]: slice };
  if (start + max < items.length) out.NextToken = String(start + max);
  return out;
}

function concurrencyLimit(value: string, targets: number): number {
  const m = /^(\d+)(%?)$/.exec(value.trim());
  if (!m) return targets;
  const n = Number(m[1]);
  if (m[2]) return Math.max(1, Math.floor((targets * n) / 100));
  return Math.max(1, n);
}

/** SendCommand validates every parameter like SSM: known names, String values matching allowedPattern, defaults. */
export function validateParameters(doc: SsmDocument, given: Record<string, string[]>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const name of Object.keys(given)) {
    if (!doc.parameters[name]) throw new SsmError('InvalidParameters', `Parameter "${name}" is not defined in document ${doc.name}`);
  }
  for (const [name, spec] of Object.entries(doc.parameters)) {
    let values = given[name];
    if (values === undefined) {
      if (spec.default === undefined) throw new SsmError('InvalidParameters', `Parameter "${name}" is required by document ${doc.name}`);
      values = Array.isArray(spec.default) ? (spec.default as unknown[]).map(String) : [String(spec.default)];
    }
    if (!Array.isArray(values)) throw new SsmError('InvalidParameters', `Parameter "${name}" must be a list of strings`);
    if (spec.type === 'String' && values.length !== 1) throw new SsmError('InvalidParameters', `Parameter "${name}" is a String and takes exactly one value`);
    if (spec.allowedPattern && given[name] !== undefined) {
      const re = new RegExp(spec.allowedPattern);
      for (const v of values) {
        if (!re.test(v)) throw new SsmError('InvalidParameters', `Parameter "${name}" "${v}" failed to satisfy constraint: Member must satisfy regular expression pattern: ${spec.allowedPattern}`);
      }
    }
    out[name] = values.map(String);
  }
  return out;
}
