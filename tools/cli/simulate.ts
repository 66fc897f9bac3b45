import { spawn } from 'node:child_process';
import path from 'node:path';

/** sim/cli.ts parses process.argv and exits itself, so it runs as its own process, exactly as `npm run simulate` runs it. */
export const SIM_CLI = path.resolve(__dirname, '..', '..', 'sim', 'cli.ts');

/** `patch-pipeline simulate <args>` == `npm run simulate -- <args>`: same program, same flags, same exit code. */
export function runSimulate(args: string[]): Promise<number> {
  const tsxCli = require.resolve('tsx/cli');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [tsxCli, SIM_CLI, ...args], { stdio: 'inherit' });
    // The terminal's Ctrl-C reaches the child too; it stops its moto and exits, and so do we.
    const ignore = (): void => undefined;
    process.on('SIGINT', ignore);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      process.off('SIGINT', ignore);
      resolve(code ?? (signal === 'SIGINT' ? 130 : 1));
    });
  });
}
