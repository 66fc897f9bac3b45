/** An input that cannot be used: the message names the field and the fix. */
export class InvalidInputError extends Error {
  public readonly name = 'InvalidInputError';
  constructor(public readonly field: string, message: string) {
    super(message);
  }
}

/** A run's data in S3 is missing or malformed (for example run.json was never written). */
export class RunDataError extends Error {
  public readonly name = 'RunDataError';
}

export const errorMessage = (err: unknown): string => (err instanceof Error ? `${err.name}: ${err.message}` : String(err));
