// The validation code shared with the Lambdas logs through Powertools; a terminal wants only the CLI's own lines.
process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
// The SDK's notice about its future Node.js support is not about this command: keep errors to one line.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { main } = require('../tools/cli/main') as typeof import('../tools/cli/main');

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`patch-pipeline: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
