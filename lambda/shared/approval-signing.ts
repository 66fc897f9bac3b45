import { createHmac, timingSafeEqual } from 'node:crypto';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';

/**
 * HMAC-SHA256 signing of approval links and ITSM messages. The secret is a Secrets Manager secret
 * read through SSM's secretsmanager reference path, so the Lambdas only need ssm:GetParameter
 * (plus secretsmanager:GetSecretValue and kms:Decrypt on the secret, which the reference uses).
 */

/** The fields a link carries; all of them are signed, so none can be changed without breaking the signature. */
export interface LinkFields {
  /** The opaque approval id (never the task token). */
  readonly id: string;
  readonly run: string;
  readonly group: string;
  /** Expiry, unix seconds. */
  readonly exp: number;
}

/** ITSM messages older (or newer) than this are refused, so a captured one cannot be replayed later. */
export const ITSM_TIMESTAMP_TOLERANCE_SECONDS = 300;
export const SIGNATURE_HEADER = 'X-Patch-Pipeline-Signature';
export const TIMESTAMP_HEADER = 'X-Patch-Pipeline-Timestamp';
/** A secret cached longer than this is read again, so a rotation reaches warm Lambdas. */
export const SECRET_CACHE_SECONDS = 300;

/** One line per field with a version prefix: unambiguous, whatever the values contain. */
const canonical = (f: LinkFields): string => ['v1', `id=${f.id}`, `run=${f.run}`, `group=${f.group}`, `exp=${f.exp}`].join('\n');

const hmacHex = (secret: string, text: string): string => createHmac('sha256', secret).update(text, 'utf-8').digest('hex');

/** Constant-time comparison of two hex / text signatures (false on any length difference). */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf-8');
  const y = Buffer.from(b, 'utf-8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The signature of a link's fields (lowercase hex). */
export const sign = (secret: string, fields: LinkFields): string => hmacHex(secret, canonical(fields));

/** True when `signature` is the signature of exactly these fields. */
export const verify = (secret: string, fields: LinkFields, signature: string): boolean => safeEqual(sign(secret, fields), signature.toLowerCase());

/** `sha256=<hex>` of `${timestamp}.${body}`: the header of an ITSM message, both directions. */
export const signMessage = (secret: string, timestamp: string, body: string): string => `sha256=${hmacHex(secret, `${timestamp}.${body}`)}`;

export type MessageCheck = 'ok' | 'bad-signature' | 'stale';

/** Checks an ITSM message: the signature first (so a forged message learns nothing), then the timestamp. */
export function verifyMessage(secret: string, timestamp: string | undefined, body: string, signature: string | undefined, now: Date): MessageCheck {
  if (!timestamp || !signature || !/^\d{1,12}$/.test(timestamp)) return 'bad-signature';
  if (!safeEqual(signMessage(secret, timestamp, body), signature.trim().toLowerCase())) return 'bad-signature';
  return Math.abs(now.getTime() / 1000 - Number(timestamp)) <= ITSM_TIMESTAMP_TOLERANCE_SECONDS ? 'ok' : 'stale';
}

/** The SSM parameter name that reads a Secrets Manager secret. */
export const secretParameterName = (secretId: string): string => `/aws/reference/secretsmanager/${secretId}`;

const cache = new Map<string, { readonly value: string; readonly until: number }>();

/** The signing secret, cached per container for SECRET_CACHE_SECONDS. Never log the value. */
export async function readSecret(ssm: SSMClient, secretId: string, now: Date = new Date()): Promise<string> {
  if (!secretId) throw new Error('APPROVAL_SECRET_ID is not set: the approval Lambdas need the id of the signing secret');
  const hit = cache.get(secretId);
  if (hit && hit.until > now.getTime()) return hit.value;
  const res = await ssm.send(new GetParameterCommand({ Name: secretParameterName(secretId), WithDecryption: true }));
  const value = res.Parameter?.Value ?? '';
  // Too short a key would make the links guessable; a generated secret is far longer.
  if (value.length < 16) throw new Error(`the signing secret ${secretId} is empty or shorter than 16 characters`);
  cache.set(secretId, { value, until: now.getTime() + SECRET_CACHE_SECONDS * 1000 });
  return value;
}

/** Forgets the cached secrets (tests, and after a rotation). */
export const clearSecretCache = (): void => cache.clear();
