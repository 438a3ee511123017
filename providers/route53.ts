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
 *              only when hosted_zone_id is not set; "TXT" only for ACME DNS-01, route53-txt.ts):
 *   {"Version": "2012-10-17", "Statement": [
 *     {"Effect": "Allow", "Action": "route53:ListResourceRecordSets",
 *      "Resource": "arn:aws:route53:::hostedzone/ZONEID"},
 *     {"Effect": "Allow", "Action": "route53:ChangeResourceRecordSets",
 *      "Resource": "arn:aws:route53:::hostedzone/ZONEID",
 *      "Condition": {"ForAllValues:StringEquals": {
 *        "route53:ChangeResourceRecordSetsRecordTypes": ["TLSA", "TXT"],
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
 *              TTL passed to apply() when the change adds records (also when they are all
 *              there already: a changed TTL is written); a remove-only change keeps the set's
 *              TTL. A CNAME at the owner name is reported, never replaced.
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
 * Limits:      listMany and applyMany work on 2 zones at a time, starting at most 2 per second
 *              (a zone is 1–3 requests: within the account's limit). 5 requests/s per AWS account (10/s plus change-based throttling since July
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
  type Change,
  ChangeResourceRecordSetsCommand,
  GetChangeCommand,
  Route53Client,
} from '@aws-sdk/client-route-53';
import { normaliseName } from '../src/tlsa/record.js';
import { registerSecret } from '../src/util/redact.js';
import { type DnsProvider, ProviderError, type ProviderFactory } from './contract.js';
import {
  refuseCnames,
  listByZone,
  Pacer,
  nameList,
  type OwnerWant,
  parseRecords,
  retryOnConflict,
  writesByZone,
} from './kit.js';

/** 5 requests/s per account; a zone's read and write are 1–3 of them. */
const PACE = { concurrency: 2, perSecond: 2 };
import { nextRRset } from './kit-rrset.js';
import { readOptions } from './options.js';
import { ROUTE53_OPTIONS } from './route53-options.js';
import { route53Txt } from './route53-txt.js';
import {
  type NameState,
  pack,
  route53Api,
  stripPrefix,
  type Unit,
  type Zone,
} from './route53-api.js';

const CONFLICT_ATTEMPTS = 6;
const valuesOf = (state: NameState) =>
  (state.tlsa?.ResourceRecords ?? []).map((r) => r.Value ?? '');

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

  const { call, zoneFor, readName, readMany } = route53Api(name, route53, zoneIdOption);

  /** An owner's DELETE (the exact set read) + CREATE (the new set), or nothing to do. */
  function unitOf(w: OwnerWant, state: NameState): Unit | undefined {
    const old = valuesOf(state);
    const now = state.tlsa && { ttl: state.tlsa.TTL, records: old.map((content) => ({ content })) };
    const next = nextRRset(w, now);
    if (!next) return undefined;
    const changes: Change[] = [];
    if (state.tlsa) {
      const { Name, TTL, ResourceRecords } = state.tlsa;
      changes.push({
        Action: 'DELETE',
        ResourceRecordSet: { Name, Type: 'TLSA', TTL, ResourceRecords },
      });
    }
    const values = next.records.map((r) => r.content);
    if (values.length) {
      changes.push({
        Action: 'CREATE',
        ResourceRecordSet: {
          Name: state.tlsa?.Name ?? w.owner,
          Type: 'TLSA',
          TTL: next.ttl,
          ResourceRecords: values.map((Value) => ({ Value })),
        },
      });
    }
    const chars = [...old, ...values].reduce((a, v) => a + v.length, 0);
    return { want: w, changes, values: old.length + values.length, chars };
  }

  /** One zone's part of applyMany: read, compute every owner's DELETE+CREATE, send them in as
   *  few batches as the limits allow; a conflict re-reads and recomputes (owners already
   *  written by an earlier batch then need nothing). */
  async function applyZone(zone: Zone, wants: OwnerWant[]): Promise<void> {
    const owners = wants.map((w) => w.owner);
    const subject =
      owners.length === 1
        ? `${owners[0]} in ${zone.label}`
        : `${owners.length} names in ${zone.label}`;
    await retryOnConflict(
      async () => {
        const states = await readMany(zone, owners);
        const cnames = owners.filter((o) => states.get(o)?.cname);
        refuseCnames(
          name,
          cnames.map((owner) => ({ owner })),
          zone.label,
          owners,
        );
        const units = wants.flatMap((w) => unitOf(w, states.get(w.owner) ?? {}) ?? []);
        for (const b of pack(name, zone, units)) {
          const first = b[0]!.want;
          const comment =
            b.length === 1
              ? `tlsa: +${first.add.length} -${first.remove.length} at ${first.owner}`
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
      CONFLICT_ATTEMPTS,
      (e) =>
        new ProviderError(
          name,
          `the TLSA record set${owners.length > 1 ? 's' : ''} at ${nameList(owners)} in ${zone.label} kept changing under us (${CONFLICT_ATTEMPTS} attempts; last: ${e.message}); another writer is busy there, run again`,
        ),
    );
  }

  const pendingChanges: string[] = [];
  const tlsaAt = (o: string, s: NameState | undefined) => parseRecords(o, s ? valuesOf(s) : []);

  const pacer = new Pacer(PACE);
  const provider: DnsProvider = {
    name,
    async list(owner) {
      const o = normaliseName(owner);
      return tlsaAt(o, await readName(await zoneFor(o), o));
    },
    listMany: (owners) =>
      listByZone(
        owners,
        zoneFor,
        (z) => z.id,
        async (zone, items) => {
          const states = await readMany(zone, items);
          return new Map(items.map((o) => [o, tlsaAt(o, states.get(o))]));
        },
        pacer,
      ),
    ...writesByZone(name, zoneFor, (z) => z.id, applyZone, undefined, pacer),
    txt: route53Txt(name, { call, zoneFor, readName }, pendingChanges),
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
