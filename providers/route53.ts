/**
 * route53: Amazon Route 53 public hosted zones, through the AWS SDK v3
 * (@aws-sdk/client-route-53, loaded only when a configuration uses this provider).
 *
 * Credentials: `access_key_id` + `secret_access_key` (+ `session_token`) options, written as
 *              ${ENV} or `*_file:` so that they are secrets (redacted everywhere); without them
 *              the standard AWS chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 *              AWS_SESSION_TOKEN, AWS_PROFILE or the `profile` option (~/.aws/credentials,
 *              ~/.aws/config, SSO), web identity, ECS and EC2 instance roles.
 * Options:     hosted_zone_id (optional, see Zone), region (us-east-1: Route 53 is global),
 *              profile, endpoint (LocalStack or a test fake), wait_timeout_s (300) and
 *              poll_interval_s (5) for waitUntilApplied.
 * IAM policy:  the least this provider needs (ZONEID = your hosted zone; the last statement
 *              only when hosted_zone_id is not set):
 *   {"Version": "2012-10-17", "Statement": [
 *     {"Effect": "Allow", "Action": "route53:ListResourceRecordSets",
 *      "Resource": "arn:aws:route53:::hostedzone/ZONEID"},
 *     {"Effect": "Allow", "Action": "route53:ChangeResourceRecordSets",
 *      "Resource": "arn:aws:route53:::hostedzone/ZONEID",
 *      "Condition": {"ForAllValues:StringEquals": {
 *        "route53:ChangeResourceRecordSetsRecordTypes": ["TLSA"],
 *        "route53:ChangeResourceRecordSetsActions": ["CREATE", "DELETE"]}}},
 *     {"Effect": "Allow", "Action": "route53:GetChange", "Resource": "arn:aws:route53:::change/*"},
 *     {"Effect": "Allow", "Action": "route53:ListHostedZonesByName", "Resource": "*"}]}
 * Zone:        hosted_zone_id, or ListHostedZonesByName for the owner name and then each parent
 *              (most specific first; private zones are skipped: DANE needs public DNS; two
 *              public zones with one name are an error that asks for hosted_zone_id). The
 *              result is cached per provider instance.
 * Writes:      Route 53 stores whole RRsets. apply() reads the record sets at the name
 *              (ListResourceRecordSets from the owner name, so a CNAME there is seen too),
 *              computes the new TLSA set, and sends ONE ChangeResourceRecordSets batch: DELETE
 *              with the exact TTL and values it read + CREATE with the new set (CREATE alone
 *              when there was none, DELETE alone when none is left). The batch is atomic and
 *              conditional: if another writer changed the set since our read, Route 53 answers
 *              InvalidChangeBatch ("… not found", "… do not match the current values", "…
 *              already exists"), and we read again and retry (6 attempts). UPSERT is never
 *              used: it would overwrite a concurrent writer's records. The new set gets the
 *              TTL passed to apply() when the change adds records; a remove-only change keeps
 *              the set's TTL. A CNAME at the owner name is reported, never replaced.
 *              applyMany() does the same for many names at once: ONE batch per hosted zone
 *              holding every owner's DELETE+CREATE (split only beyond the batch limits below,
 *              an owner's pair never split); a CNAME at any owner is reported, naming it,
 *              before anything in that zone is written; InvalidChangeBatch re-reads all the
 *              owners of the zone and rebuilds (6 attempts). apply() is applyMany() of one.
 * Reads:       list() and apply() of one name read from the owner name (usually 1 call).
 *              listMany()/applyMany() of several names in a zone read each name the same way
 *              while that is cheaper, else walk the whole zone once (ListResourceRecordSets,
 *              MaxItems 300, all pages): when the zone's record-set count is known (zone
 *              discovery) and ceil(count/300) is fewer calls than names, or, with
 *              hosted_zone_id (count unknown), for more than 4 names.
 * Requests:    (plus ListHostedZonesByName per zone level once per instance, without
 *              hosted_zone_id.) list: 1 read. apply: 1 read + 1 ChangeResourceRecordSets.
 *              listMany of N names in one zone: min(N, ceil(sets/300)) reads, as above.
 *              applyMany of N names in one zone: those reads + 1 ChangeResourceRecordSets
 *              (one more per 100 changes / 1,000 values / 32,000 characters); each conflict
 *              retry repeats both. waitUntilApplied: GetChange polls per pending change.
 * Limits:      5 requests/s per AWS account (10/s plus change-based throttling since July
 *              2026); Throttling, PriorRequestNotComplete, 5xx and network errors are retried
 *              with exponential backoff and full jitter (src/util/retry.ts, 6 attempts); the
 *              SDK's own retry is off (maxAttempts 1) so there is one bounded policy, not two
 *              multiplied. A batch holds at most 1,000 values and 32,000 characters of
 *              values (UPSERT values count twice); tlsa also keeps it to 100 changes. Changes are PENDING until every Route 53 server has them (INSYNC,
 *              usually within 60 s): waitUntilApplied() polls GetChange, bounded by
 *              wait_timeout_s. The engine still checks the authoritative servers itself.
 * Errors:      bad credentials (InvalidClientTokenId, SignatureDoesNotMatch, …), AccessDenied
 *              (naming the missing IAM action) and NoSuchHostedZone fail at once, naming the
 *              zone; secrets never appear in messages.
 */
import {
  ChangeResourceRecordSetsCommand,
  GetChangeCommand,
  ListHostedZonesByNameCommand,
  ListResourceRecordSetsCommand,
  Route53Client,
  type Change,
  type ResourceRecordSet,
  type RRType,
} from '@aws-sdk/client-route-53';
import { parseRdata } from '../src/tlsa/presentation.js';
import { normaliseName, rdataText, type TlsaRecord } from '../src/tlsa/record.js';
import { redact, registerSecret } from '../src/util/redact.js';
import { withRetry } from '../src/util/retry.js';
import { readOptions } from './options.js';
import { ROUTE53_OPTIONS } from './route53-options.js';
import {
  checkChangeOwners,
  ProviderError,
  type DnsProvider,
  type ProviderFactory,
  type TlsaChange,
} from './index.js';

type Operation =
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
const CONFLICT_ATTEMPTS = 6;
/** Change batch limits: changes, ResourceRecord values, characters of all values. */
const MAX_BATCH_CHANGES = 100;
const MAX_BATCH_VALUES = 1_000;
const MAX_BATCH_CHARS = 32_000;
/** Without the zone's size, more names than this are read with one zone walk. */
const WALK_AFTER = 4;

/** Another writer changed the RRset between our read and our write. */
class Conflict extends Error {}

interface Zone {
  id: string;
  /** How messages name it: "hosted zone Z123 (example.org.)". */
  label: string;
  /** Record sets in the zone, when discovery saw it (ListHostedZonesByName gives it). */
  setCount?: number;
}

/** One owner's change, as applyMany works on it (changes for one owner merged). */
interface Want {
  owner: string;
  add: TlsaRecord[];
  removeKeys: Set<string>;
  ttl: number;
  added: number;
  removed: number;
}

interface NameState {
  tlsa?: ResourceRecordSet;
  cname?: ResourceRecordSet;
}

export const createProvider: ProviderFactory = (options, ctx) => {
  const opt = readOptions(ROUTE53_OPTIONS, options, ctx);
  const zoneIdOption = opt.hosted_zone_id?.replace(/^\/?hostedzone\//, '');
  const { region, profile, endpoint } = opt;
  const accessKeyId = opt.access_key_id;
  const secretAccessKey = opt.secret_access_key;
  const sessionToken = opt.session_token;
  if (!!accessKeyId !== !!secretAccessKey) {
    throw ctx.optionError(
      accessKeyId ? 'secret_access_key' : 'access_key_id',
      'access_key_id and secret_access_key go together; leave both out to use the AWS credential chain (environment, profile, instance role)',
    );
  }
  if (sessionToken && !accessKeyId)
    throw ctx.optionError(
      'session_token',
      'session_token needs access_key_id and secret_access_key',
    );
  if (profile && accessKeyId)
    throw ctx.optionError(
      'profile',
      'set either profile or access_key_id/secret_access_key, not both',
    );
  if (endpoint && !/^https?:\/\/[^\s/]+/.test(endpoint))
    throw ctx.optionError(
      'endpoint',
      '"endpoint" must be an http(s) URL such as http://127.0.0.1:4566',
    );
  const waitTimeoutMs = opt.wait_timeout_s * 1000;
  const pollIntervalMs = opt.poll_interval_s * 1000;
  for (const s of [secretAccessKey, sessionToken]) if (s) registerSecret(s);

  const name = `route53(${ctx.instance})`;
  let client: Route53Client | undefined;
  const route53 = (): Route53Client =>
    (client ??= new Route53Client({
      region,
      maxAttempts: 1,
      ...(endpoint ? { endpoint } : {}),
      ...(accessKeyId && secretAccessKey
        ? {
            credentials: {
              accessKeyId,
              secretAccessKey,
              ...(sessionToken ? { sessionToken } : {}),
            },
          }
        : {}),
      ...(profile ? { profile } : {}),
    }));

  /** One API call with the transient-error retry; errors become ProviderErrors (or Conflict). */
  async function call<T>(
    op: Operation,
    subject: string,
    fn: (c: Route53Client) => Promise<T>,
  ): Promise<T> {
    try {
      return await withRetry(() => fn(route53()), {
        attempts: 6,
        baseDelayMs: 250,
        maxDelayMs: 8_000,
        isRetryable: transient,
      });
    } catch (e) {
      throw translate(e, op, subject);
    }
  }

  function translate(e: unknown, op: Operation, subject: string): Error {
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

  const zones = new Map<string, Zone>();
  const notZones = new Set<string>();

  async function zoneFor(owner: string): Promise<Zone> {
    if (zoneIdOption) return { id: zoneIdOption, label: `hosted zone ${zoneIdOption}` };
    const labels = owner.slice(0, -1).split('.');
    const tried: string[] = [];
    for (let i = 0; i < labels.length; i++) {
      const candidate = `${labels.slice(i).join('.')}.`;
      const cached = zones.get(candidate);
      if (cached) return cached;
      tried.push(candidate);
      if (notZones.has(candidate)) continue;
      const out = await call('ListHostedZonesByName', `the hosted zone of ${owner}`, (c) =>
        c.send(new ListHostedZonesByNameCommand({ DNSName: candidate, MaxItems: 20 })),
      );
      const matches = (out.HostedZones ?? []).filter(
        (z) => z.Name && sameName(z.Name, candidate) && !z.Config?.PrivateZone,
      );
      if (matches.length > 1) {
        throw new ProviderError(
          name,
          `${matches.length} public hosted zones are named ${candidate} (${matches.map((z) => stripPrefix(z.Id ?? '')).join(', ')}); set hosted_zone_id to the one that is delegated`,
        );
      }
      const z = matches[0];
      if (z?.Id) {
        const zone: Zone = {
          id: stripPrefix(z.Id),
          label: `hosted zone ${stripPrefix(z.Id)} (${candidate})`,
          ...(typeof z.ResourceRecordSetCount === 'number'
            ? { setCount: z.ResourceRecordSetCount }
            : {}),
        };
        zones.set(candidate, zone);
        return zone;
      }
      notZones.add(candidate);
    }
    throw new ProviderError(
      name,
      `no public hosted zone found for ${owner} (looked for ${tried.join(', ')}); create the zone, check the account of the credentials, or set hosted_zone_id`,
    );
  }

  /** The record sets at the owner name that matter: TLSA and CNAME. Starts the listing at the
   *  owner name (no type), so the sets there come first, sorted by type; pages on while the
   *  listing is still at the owner name and has not passed TLSA. */
  async function readName(zone: Zone, owner: string): Promise<NameState> {
    const state: NameState = {};
    let startName: string | undefined = owner;
    let startType: RRType | undefined;
    for (let page = 0; page < 1000; page++) {
      const out = await call('ListResourceRecordSets', zone.label, (c) =>
        c.send(
          new ListResourceRecordSetsCommand({
            HostedZoneId: zone.id,
            StartRecordName: startName,
            ...(startType ? { StartRecordType: startType } : {}),
            MaxItems: 300,
          }),
        ),
      );
      let done = false;
      for (const s of out.ResourceRecordSets ?? []) {
        if (!s.Name || !sameName(s.Name, owner)) {
          done = true;
          break;
        }
        if (s.Type === 'TLSA') {
          if (s.SetIdentifier || s.AliasTarget || state.tlsa) {
            throw new ProviderError(
              name,
              `${owner} in ${zone.label} has a TLSA record set with a routing policy or alias; tlsa writes only simple record sets`,
            );
          }
          state.tlsa = s;
        }
        if (s.Type === 'CNAME') state.cname = s;
      }
      const next = out.NextRecordName;
      const nextType = out.NextRecordType;
      // Types at one name come sorted: once the listing is past TLSA (and so past CNAME), stop.
      if (
        done ||
        !out.IsTruncated ||
        !next ||
        !nextType ||
        !sameName(next, owner) ||
        nextType > 'TLSA'
      )
        break;
      startName = next;
      startType = nextType;
    }
    return state;
  }

  /** The values of a TLSA set, parsed where possible; a value we cannot read stays in the set
   *  untouched (it can never match a removal). */
  function recordsOf(
    owner: string,
    set: ResourceRecordSet | undefined,
  ): Array<{ value: string; record?: TlsaRecord }> {
    return (set?.ResourceRecords ?? []).map((r) => {
      const value = r.Value ?? '';
      try {
        return { value, record: { owner, ...parseRdata(value) } };
      } catch {
        return { value };
      }
    });
  }

  /** The record sets that matter (TLSA, CNAME) at several owner names of one zone: one read
   *  per name (readName) while that is cheaper, else ONE paged walk over the whole zone. The
   *  walk costs ceil(record sets / 300) calls: it is used when the zone's size is known and
   *  that is fewer calls than the names, or (size unknown, hosted_zone_id set) for more than
   *  WALK_AFTER names. */
  async function readMany(zone: Zone, owners: string[]): Promise<Map<string, NameState>> {
    const out = new Map<string, NameState>();
    const walk =
      zone.setCount !== undefined
        ? Math.max(1, Math.ceil(zone.setCount / 300)) < owners.length
        : owners.length > WALK_AFTER;
    if (!walk) {
      for (const o of owners) out.set(o, await readName(zone, o));
      return out;
    }
    const wanted = new Map(owners.map((o) => [nameKey(o), o] as const));
    for (const o of owners) out.set(o, {});
    let start: { name: string; type: RRType; id?: string } | undefined;
    for (let page = 0; page < 100_000; page++) {
      const from = start;
      const res = await call('ListResourceRecordSets', zone.label, (c) =>
        c.send(
          new ListResourceRecordSetsCommand({
            HostedZoneId: zone.id,
            MaxItems: 300,
            ...(from
              ? {
                  StartRecordName: from.name,
                  StartRecordType: from.type,
                  ...(from.id ? { StartRecordIdentifier: from.id } : {}),
                }
              : {}),
          }),
        ),
      );
      for (const s of res.ResourceRecordSets ?? []) {
        const o = s.Name ? wanted.get(nameKey(s.Name)) : undefined;
        if (!o) continue;
        const state = out.get(o)!;
        if (s.Type === 'TLSA') {
          if (s.SetIdentifier || s.AliasTarget || state.tlsa) {
            throw new ProviderError(
              name,
              `${o} in ${zone.label} has a TLSA record set with a routing policy or alias; tlsa writes only simple record sets`,
            );
          }
          state.tlsa = s;
        }
        if (s.Type === 'CNAME') state.cname = s;
      }
      if (!res.IsTruncated || !res.NextRecordName || !res.NextRecordType) break;
      start = {
        name: res.NextRecordName,
        type: res.NextRecordType,
        ...(res.NextRecordIdentifier ? { id: res.NextRecordIdentifier } : {}),
      };
    }
    return out;
  }

  /** Owner names grouped by hosted zone (zone lookups are cached). */
  async function byZone<T>(
    items: T[],
    ownerOf: (t: T) => string,
  ): Promise<Array<{ zone: Zone; items: T[] }>> {
    const out = new Map<string, { zone: Zone; items: T[] }>();
    for (const t of items) {
      const zone = await zoneFor(ownerOf(t));
      const entry = out.get(zone.id);
      if (entry) entry.items.push(t);
      else out.set(zone.id, { zone, items: [t] });
    }
    return [...out.values()];
  }

  /** One zone's part of applyMany: read, compute every owner's DELETE+CREATE, send them in as
   *  few batches as the limits allow; a conflict re-reads and recomputes (owners already
   *  written by an earlier batch then need nothing). */
  async function applyZone(zone: Zone, wants: Want[]): Promise<void> {
    const owners = wants.map((w) => w.owner);
    const subject =
      owners.length === 1
        ? `${owners[0]} in ${zone.label}`
        : `${owners.length} names in ${zone.label}`;
    try {
      await withRetry(
        async () => {
          const states = await readMany(zone, owners);
          const cnames = owners.filter((o) => states.get(o)?.cname);
          if (cnames.length) {
            throw new ProviderError(
              name,
              `${nameList(cnames)} ${cnames.length === 1 ? 'has a CNAME' : 'have CNAMEs'} in ${zone.label}; TLSA records cannot sit beside it, and tlsa does not overwrite it: move the TLSA records to the CNAME's target or remove the CNAME${owners.length > 1 ? ' (nothing was written)' : ''}`,
            );
          }
          const units: Array<{
            owner: string;
            want: Want;
            changes: Change[];
            values: number;
            chars: number;
          }> = [];
          for (const w of wants) {
            const state = states.get(w.owner) ?? {};
            const current = recordsOf(w.owner, state.tlsa);
            const kept = current.filter((x) => !(x.record && w.removeKeys.has(rdataKey(x.record))));
            const values = kept.map((x) => x.value);
            const present = new Set(kept.flatMap((x) => (x.record ? [rdataKey(x.record)] : [])));
            for (const r of w.add) {
              if (present.has(rdataKey(r))) continue;
              present.add(rdataKey(r));
              values.push(rdataText(r));
            }
            if (kept.length === current.length && values.length === current.length) continue; // nothing to do
            const changes: Change[] = [];
            const old = (state.tlsa?.ResourceRecords ?? []).map((r) => r.Value ?? '');
            if (state.tlsa) {
              changes.push({
                Action: 'DELETE',
                ResourceRecordSet: {
                  Name: state.tlsa.Name,
                  Type: 'TLSA',
                  TTL: state.tlsa.TTL,
                  ResourceRecords: state.tlsa.ResourceRecords,
                },
              });
            }
            if (values.length) {
              // A change without adds keeps the set's TTL (a foreign writer's, or an older one).
              const ttl = w.add.length || state.tlsa?.TTL === undefined ? w.ttl : state.tlsa.TTL;
              changes.push({
                Action: 'CREATE',
                ResourceRecordSet: {
                  Name: state.tlsa?.Name ?? w.owner,
                  Type: 'TLSA',
                  TTL: ttl,
                  ResourceRecords: values.map((Value) => ({ Value })),
                },
              });
            }
            const chars = [...old, ...values].reduce((a, v) => a + v.length, 0);
            units.push({
              owner: w.owner,
              want: w,
              changes,
              values: old.length + values.length,
              chars,
            });
          }
          // Pack whole owners (their DELETE and CREATE stay together) into batches within the limits.
          const batches: Array<typeof units> = [];
          let cur: typeof units = [];
          let size = { changes: 0, values: 0, chars: 0 };
          for (const u of units) {
            if (u.values > MAX_BATCH_VALUES || u.chars > MAX_BATCH_CHARS) {
              throw new ProviderError(
                name,
                `${u.owner} in ${zone.label}: its TLSA set is too large for one Route 53 change batch (${u.values} values, ${u.chars} characters; at most ${MAX_BATCH_VALUES} and ${MAX_BATCH_CHARS})`,
              );
            }
            if (
              cur.length &&
              (size.changes + u.changes.length > MAX_BATCH_CHANGES ||
                size.values + u.values > MAX_BATCH_VALUES ||
                size.chars + u.chars > MAX_BATCH_CHARS)
            ) {
              batches.push(cur);
              cur = [];
              size = { changes: 0, values: 0, chars: 0 };
            }
            cur.push(u);
            size = {
              changes: size.changes + u.changes.length,
              values: size.values + u.values,
              chars: size.chars + u.chars,
            };
          }
          if (cur.length) batches.push(cur);
          for (const b of batches) {
            const first = b[0]!;
            const comment =
              b.length === 1
                ? `tlsa: +${first.want.added} -${first.want.removed} at ${first.owner}`
                : `tlsa: ${b.length} names`;
            const out = await call('ChangeResourceRecordSets', subject, (c) =>
              c.send(
                new ChangeResourceRecordSetsCommand({
                  HostedZoneId: zone.id,
                  ChangeBatch: {
                    Comment: comment.slice(0, 256),
                    Changes: b.flatMap((u) => u.changes),
                  },
                }),
              ),
            );
            if (out.ChangeInfo?.Id && out.ChangeInfo.Status !== 'INSYNC')
              pendingChanges.push(out.ChangeInfo.Id);
          }
        },
        {
          attempts: CONFLICT_ATTEMPTS,
          baseDelayMs: 150,
          maxDelayMs: 2_000,
          isRetryable: (e) => e instanceof Conflict,
        },
      );
    } catch (e) {
      if (e instanceof Conflict) {
        throw new ProviderError(
          name,
          `the TLSA record set${owners.length > 1 ? 's' : ''} at ${nameList(owners)} in ${zone.label} kept changing under us (${CONFLICT_ATTEMPTS} attempts; last: ${e.message}); another writer is busy there, run again`,
        );
      }
      throw e;
    }
  }

  const pendingChanges: string[] = [];

  const provider: DnsProvider = {
    name,
    async list(owner) {
      const o = normaliseName(owner);
      const zone = await zoneFor(o);
      const state = await readName(zone, o);
      return recordsOf(o, state.tlsa).flatMap((x) => (x.record ? [x.record] : []));
    },

    async listMany(ownersIn) {
      const out = new Map<string, TlsaRecord[]>();
      const owners = [...new Set(ownersIn.map((o) => normaliseName(o)))];
      for (const { zone, items } of await byZone(owners, (o) => o)) {
        const states = await readMany(zone, items);
        for (const o of items)
          out.set(
            o,
            recordsOf(o, states.get(o)?.tlsa).flatMap((x) => (x.record ? [x.record] : [])),
          );
      }
      // Also under the caller's spelling, when it was not the normal form.
      for (const o of ownersIn) if (!out.has(o)) out.set(o, out.get(normaliseName(o)) ?? []);
      return out;
    },

    async apply(owner, change: TlsaChange, ttl) {
      const o = normaliseName(owner);
      checkChangeOwners(name, o, change);
      await provider.applyMany!([{ owner: o, add: change.add, remove: change.remove }], () => ttl);
    },

    async applyMany(changes, ttlOf) {
      // One Want per owner (changes for the same owner are merged); empty changes cost nothing.
      const wants = new Map<string, Want>();
      for (const c of changes) {
        const o = normaliseName(c.owner);
        checkChangeOwners(name, o, c);
        let w = wants.get(o);
        if (!w) {
          const ttl = ttlOf(c.owner);
          if (!Number.isInteger(ttl) || ttl < 0)
            throw new ProviderError(name, `TTL ${ttl} is not a number of seconds`);
          w = { owner: o, add: [], removeKeys: new Set(), ttl, added: 0, removed: 0 };
          wants.set(o, w);
        }
        w.add.push(...c.add);
        for (const r of c.remove) w.removeKeys.add(rdataKey(r));
        w.added += c.add.length;
        w.removed += c.remove.length;
      }
      const todo = [...wants.values()].filter((w) => w.add.length || w.removeKeys.size);
      if (!todo.length) return;
      const groups = await byZone(todo, (w) => w.owner);
      for (const { zone, items } of groups) await applyZone(zone, items);
    },

    async waitUntilApplied() {
      const deadline = Date.now() + waitTimeoutMs;
      while (pendingChanges.length) {
        const id = pendingChanges[0]!;
        const out = await call('GetChange', `change ${stripPrefix(id)}`, (c) =>
          c.send(new GetChangeCommand({ Id: id })),
        );
        const status = out.ChangeInfo?.Status;
        if (status === 'INSYNC') {
          pendingChanges.shift();
          continue;
        }
        if (Date.now() + pollIntervalMs > deadline) {
          throw new ProviderError(
            name,
            `change ${stripPrefix(id)} is still ${status ?? 'unknown'} after ${waitTimeoutMs / 1000} s (Route 53 usually reaches INSYNC within 60 s); the records are written, the engine checks the name servers itself`,
          );
        }
        await new Promise((r) => setTimeout(r, pollIntervalMs));
      }
    },
  };
  return provider;
};

function rdataKey(r: Pick<TlsaRecord, 'usage' | 'selector' | 'matching' | 'data'>): string {
  return `${r.usage} ${r.selector} ${r.matching} ${r.data.toLowerCase()}`;
}

/** Route 53 names: trailing dot optional, case-insensitive, special characters as \ddd. */
function sameName(a: string, b: string): boolean {
  return nameKey(a) === nameKey(b);
}

/** A name as a map key: the form sameName() compares. */
function nameKey(s: string): string {
  const x = s
    .toLowerCase()
    .replace(/\\(\d{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return x.endsWith('.') ? x : `${x}.`;
}

/** Names for a message: all of a few, the first three of many. */
function nameList(names: string[]): string {
  return names.length <= 3
    ? names.join(', ')
    : `${names.slice(0, 3).join(', ')} and ${names.length - 3} more`;
}

function stripPrefix(id: string): string {
  return id.replace(/^\/?(hostedzone|change)\//, '');
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
function transient(e: unknown): boolean {
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
