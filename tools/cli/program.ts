import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { Command, CommanderError, Option } from 'commander';
import { describeCliError, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, exitCodeOf, UsageError } from './errors';
import { Io, println } from './io';
import { fetchReport, parseReport, ReportFormat, reportLines } from './report';
import { startRun } from './start';
import { isTerminal, resolveBucket, resolveRun, RunStatus, runStatus } from './status';
import { printStatus, StatusWatcher } from './status-view';

export interface CliDeps {
  readonly io: Io;
  /** Clients for a region (undefined: the SDK's region chain). */
  readonly sfn: (region?: string) => SFNClient;
  readonly s3: (region?: string) => S3Client;
  readonly env?: NodeJS.ProcessEnv;
  readonly now?: () => Date;
  readonly sleep?: (ms: number) => Promise<void>;
  /** `simulate`: the local simulation's own CLI with these arguments; resolves to its exit code. */
  readonly simulate: (args: string[]) => Promise<number>;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

const seconds = (flag: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 1) throw new UsageError(`${flag} ${JSON.stringify(v)} must be a number of seconds >= 1`);
  return n;
};

/** Region of an execution given as an ARN, so its clients talk to that region whatever the profile says. */
const regionOfArn = (run: string): string | undefined => (run.startsWith('arn:') ? run.split(':')[3] || undefined : undefined);

/**
 * Runs one command line (without node and the script name) and returns the exit code:
 * 0 ok, 1 runtime error, 2 usage or validation error. Errors are one line on stderr.
 */
export async function runCli(argv: string[], deps: CliDeps): Promise<number> {
  const { io } = deps;
  const env = deps.env ?? process.env;
  // Everything after `simulate` belongs to the simulation's own parser, --help included.
  if (argv[0] === 'simulate') return deps.simulate(argv.slice(1));

  let code = EXIT_OK;
  const program = new Command()
    .name('patch-pipeline')
    .description('Start, follow and read patch-pipeline runs (AWS Step Functions + S3), or run the local simulation.')
    .showHelpAfterError('(run patch-pipeline --help for usage)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });

  program
    .command('start')
    .description('start a run: StartExecution with the run id as the execution name')
    .option('--name <runId>', 'run id = execution name (default manual-<UTC timestamp>)')
    .option('--tags <Key=v1,v2...>', 'target tag filter, repeatable: every key must match one of its values (replaces the default tags)', collect)
    .option('--instance-ids <i-1,i-2...>', 'narrow the targets to these instance ids', collect)
    .option('--batch-size <n>', 'instances per batch, 1..50')
    .option('--dry-run', 'pass "dryRun": true: discover and report, change nothing')
    .option('--input <json|file>', 'execution input as JSON text or a file; the flags above replace its fields')
    .option('--state-machine-arn <arn>', 'default: $PATCH_PIPELINE_STATE_MACHINE_ARN, else the one PatchPipelineStateMachine* of the region')
    .option('--json', 'print the result as JSON')
    .action(async (o: { name?: string; tags?: string[]; instanceIds?: string[]; batchSize?: string; dryRun?: boolean; input?: string; stateMachineArn?: string; json?: boolean }) => {
      const res = await startRun(o, { sfn: deps.sfn(o.stateMachineArn ? regionOfArn(o.stateMachineArn) : undefined), env, now: deps.now });
      if (o.json) {
        println(io, JSON.stringify({ runId: res.runId, executionArn: res.executionArn, consoleUrl: res.consoleUrl, input: res.input }, null, 2));
        return;
      }
      println(io, `run id:     ${res.runId}`);
      println(io, `execution:  ${res.executionArn}`);
      println(io, `console:    ${res.consoleUrl}`);
      if (res.input.dryRun === true) println(io, 'dry run:    yes');
      println(io, `follow it:  patch-pipeline status ${res.runId} --watch`);
    });

  program
    .command('status')
    .description('execution state and per-step progress of a run (power-on, snapshot, each stage)')
    .argument('<runId>', 'run id (execution name) or execution ARN')
    .option('--bucket <name>', 'run bucket (default: $PATCH_PIPELINE_BUCKET, else read from the execution)')
    .option('--watch', 'refresh until the execution ends; exits 1 if it did not succeed')
    .addOption(new Option('--interval <seconds>', 'seconds between two refreshes with --watch').default(10).argParser(seconds('--interval')))
    .option('--state-machine-arn <arn>', 'default: $PATCH_PIPELINE_STATE_MACHINE_ARN, else the one PatchPipelineStateMachine* of the region')
    .action(async (runArg: string, o: { bucket?: string; watch?: boolean; interval: number; stateMachineArn?: string }) => {
      const region = regionOfArn(runArg) ?? (o.stateMachineArn ? regionOfArn(o.stateMachineArn) : undefined);
      const sfn = deps.sfn(region);
      const s3 = deps.s3(region);
      const run = await resolveRun(sfn, runArg, o.stateMachineArn, env);
      if (!o.watch) {
        printStatus(io, await runStatus(run, { bucket: o.bucket }, { sfn, s3, env }));
        return;
      }
      const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
      const watcher = new StatusWatcher(io);
      let s: RunStatus;
      let bucket: string | undefined;
      try {
        for (;;) {
          s = await runStatus(run, { bucket: o.bucket, knownBucket: bucket }, { sfn, s3, env });
          bucket = s.bucket;
          watcher.update(s);
          if (isTerminal(s.status)) break;
          await sleep(o.interval * 1000);
        }
      } finally {
        watcher.stop();
      }
      println(io, `execution ${s.status}: see patch-pipeline report ${run.runId}`);
      if (s.status !== 'SUCCEEDED') code = EXIT_RUNTIME;
    });

  program
    .command('report')
    .description("a run's report: totals, per-stage counts, failed and skipped instances with their reasons")
    .argument('<runId>', 'run id (execution name) or execution ARN')
    .option('--bucket <name>', 'run bucket (default: $PATCH_PIPELINE_BUCKET, else read from the execution)')
    .option('--json', 'print report.json as it is')
    .option('--csv', 'print report.csv as it is')
    .option('--state-machine-arn <arn>', 'only used to find the bucket from the execution')
    .action(async (runArg: string, o: { bucket?: string; json?: boolean; csv?: boolean; stateMachineArn?: string }) => {
      if (o.json && o.csv) throw new UsageError('--json and --csv exclude each other: pick one');
      const region = regionOfArn(runArg) ?? (o.stateMachineArn ? regionOfArn(o.stateMachineArn) : undefined);
      const sfn = deps.sfn(region);
      let runId = runArg;
      let bucket = o.bucket ?? env.PATCH_PIPELINE_BUCKET;
      if (!bucket || runArg.startsWith('arn:')) {
        const run = await resolveRun(sfn, runArg, o.stateMachineArn, env);
        runId = run.runId;
        bucket ??= await resolveBucket(sfn, run.executionArn, undefined, env);
      } else if (!/^[A-Za-z0-9_-]{1,80}$/.test(runArg)) {
        throw new UsageError(`run id ${JSON.stringify(runArg)} must be 1-80 letters, digits, '-' or '_' (the execution name)`);
      }
      if (!bucket) throw new UsageError(`the bucket of run ${runId} is not known yet (the execution has not passed "Normalize input"): pass --bucket or set PATCH_PIPELINE_BUCKET`);
      const format: ReportFormat = o.csv ? 'csv' : o.json ? 'json' : 'table';
      const text = await fetchReport(deps.s3(region), bucket, runId, format);
      if (format !== 'table') {
        io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
        return;
      }
      for (const l of reportLines(parseReport(text, `s3://${bucket}/runs/${runId}/report/report.json`))) println(io, l);
    });

  program
    .command('simulate')
    .description('run the local simulation (same flags as npm run simulate; patch-pipeline simulate --help)')
    .allowUnknownOption()
    .helpOption(false);

  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are not errors; commander already printed its message.
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    io.stderr.write(`patch-pipeline: ${describeCliError(err)}\n`);
    return exitCodeOf(err);
  }
}
