/** Exit codes of the CLI. */
export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;

/** A bad flag, argument or execution input: the user fixes the command line (exit 2). */
export class UsageError extends Error {
  public readonly name = 'UsageError';
}

/** Something the command needs is missing or failed at run time (exit 1). */
export class CliError extends Error {
  public readonly name = 'CliError';
}

/**
 * One readable line for any error: the SDK's errors carry their service error name, which says
 * more than the message alone (ExecutionAlreadyExists, AccessDeniedException, ...).
 */
export function describeCliError(err: unknown): string {
  if (err instanceof UsageError || err instanceof CliError) return err.message;
  if (err instanceof Error) {
    const name = err.name;
    if (name === 'CredentialsProviderError') {
      return `no AWS credentials found (${err.message}): configure them with aws configure / AWS_PROFILE, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`;
    }
    const msg = err.message.split('\n')[0];
    return name && name !== 'Error' ? `${name}: ${msg}` : msg;
  }
  return String(err);
}

export const exitCodeOf = (err: unknown): number => (err instanceof UsageError ? EXIT_USAGE : EXIT_RUNTIME);
