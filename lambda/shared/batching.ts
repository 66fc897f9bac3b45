/** Splits a list into chunks of at most `size` items (SendCommand takes at most 50 instance ids). */
export const SEND_COMMAND_MAX_TARGETS = 50;

export function chunk<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`chunk size must be a positive integer, got ${size}`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
