/** Route 53's errors, as the route53 provider reports them: credentials, access (naming the
 *  IAM action), unknown zones, conflicts (another writer changed the set: read again), and
 *  the transient ones worth another try. */
import { redact } from '../src/util/redact.js';
import { ProviderError } from './contract.js';
import { Conflict } from './kit.js';

export type Operation =
  | 'ListHostedZonesByName'
  | 'ListResourceRecordSets'
  | 'ChangeResourceRecordSets'
  | 'GetChange';

/** Error codes that mean "these credentials are not accepted" (STS/SigV4 wording). */
const CREDENTIAL_CODES = new Set([
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'SignatureDoesNotMatch',
  'IncompleteSignature',
  'MissingAuthenticationToken',
  'InvalidAccessKeyId',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidToken',
  'CredentialsProviderError',
  'AuthFailure',
]);
const ACCESS_DENIED_CODES = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'NotAuthorizedException',
]);
const TRANSIENT_CODES = new Set([
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'PriorRequestNotComplete',
  'ServiceUnavailable',
  'InternalFailure',
  'InternalError',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
]);
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
const CONFLICT = /but it was not found|do not match the current values|but it already exists/i;
export function translate(name: string, e: unknown, op: Operation, subject: string): Error {
  const code = errorCode(e);
  const said = redact(errorMessage(e));
  const action = `route53:${op}`;
  if (op === 'ChangeResourceRecordSets' && code === 'InvalidChangeBatch') {
    if (CONFLICT.test(said)) return new Conflict(said);
    if (/CNAME/.test(said))
      return new ProviderError(
        name,
        `${subject}: Route 53 refuses TLSA records beside the CNAME there (${said}); tlsa does not overwrite a CNAME: move the TLSA records to the CNAME's target or remove the CNAME`,
      );
    return new ProviderError(name, `${subject}: Route 53 rejected the change batch: ${said}`);
  }
  if (CREDENTIAL_CODES.has(code) || (e as Error)?.name === 'CredentialsProviderError') {
    return new ProviderError(
      name,
      `AWS did not accept the credentials (${code}) calling ${op} for ${subject}: check access_key_id/secret_access_key, the profile or the AWS credential chain. AWS said: ${said}`,
    );
  }
  if (ACCESS_DENIED_CODES.has(code)) {
    return new ProviderError(
      name,
      `access denied calling ${op} for ${subject}: the IAM policy must allow ${action} (see the least-privilege policy in providers/route53.ts). AWS said: ${said}`,
    );
  }
  if (code === 'NoSuchHostedZone')
    return new ProviderError(
      name,
      `${subject} does not exist (NoSuchHostedZone): check hosted_zone_id and the account of the credentials`,
    );
  if (code === 'NoSuchChange')
    return new ProviderError(name, `${subject} is unknown to Route 53 (NoSuchChange)`);
  if (transient(e))
    return new ProviderError(
      name,
      `${op} for ${subject} still failing after retries (${code}): ${said}`,
    );
  return new ProviderError(name, `${op} for ${subject} failed (${code}): ${said}`, { cause: e });
}

function errorCode(e: unknown): string {
  const x = e as { name?: string; Code?: string; code?: string; $metadata?: unknown } | undefined;
  if (x && typeof x.code === 'string' && NETWORK_CODES.has(x.code)) return x.code;
  return (
    x?.Code ?? (x?.$metadata !== undefined ? x?.name : undefined) ?? x?.code ?? x?.name ?? 'Error'
  );
}

function errorMessage(e: unknown): string {
  return (e as Error)?.message || String(e);
}

/** Throttling, PriorRequestNotComplete, 5xx and network trouble: worth another try. */
export function transient(e: unknown): boolean {
  if (e instanceof Conflict || e instanceof ProviderError) return false;
  const code = errorCode(e);
  if (TRANSIENT_CODES.has(code) || NETWORK_CODES.has(code)) return true;
  const x = e as {
    $metadata?: { httpStatusCode?: number };
    $fault?: string;
    $retryable?: unknown;
    cause?: { code?: string };
  };
  const status = x?.$metadata?.httpStatusCode;
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  if (x?.cause?.code && NETWORK_CODES.has(x.cause.code)) return true;
  return false;
}
