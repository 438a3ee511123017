/** Route 53 as the route53 provider uses it (route53.ts has the provider's whole story): API
 *  calls with one bounded retry policy and errors translated to ProviderErrors, hosted-zone
 *  discovery, and the TLSA and CNAME record sets at owner names. */
import {
  type Change,
  ListHostedZonesByNameCommand,
  ListResourceRecordSetsCommand,
  type ResourceRecordSet,
  type Route53Client,
  type RRType,
} from '@aws-sdk/client-route-53';
import { withRetry } from '../src/util/retry.js';
import { ProviderError } from './contract.js';
import { type OwnerWant, zoneFinder } from './kit.js';
import { type Operation, transient, translate } from './route53-errors.js';

/** Change batch limits: changes, ResourceRecord values, characters of all values. */
const MAX_BATCH_CHANGES = 100;
const MAX_BATCH_VALUES = 1_000;
const MAX_BATCH_CHARS = 32_000;

/** One owner's DELETE+CREATE, never split over two batches. */
export interface Unit {
  want: OwnerWant;
  changes: Change[];
  values: number;
  chars: number;
}

/** Without the zone's size, more names than this are read with one zone walk. */
const WALK_AFTER = 4;

export interface Zone {
  id: string;
  /** How messages name it: "hosted zone Z123 (example.org.)". */
  label: string;
  /** Record sets in the zone, when discovery saw it (ListHostedZonesByName gives it). */
  setCount?: number;
}

export interface NameState {
  tlsa?: ResourceRecordSet;
  cname?: ResourceRecordSet;
  /** Read only when asked (readName's `through: 'TXT'`). */
  txt?: ResourceRecordSet;
}

export function route53Api(name: string, route53: () => Route53Client, zoneIdOption?: string) {
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
      throw translate(name, e, op, subject);
    }
  }

  const findZone = zoneFinder<Zone>(
    async (candidate, owner) => {
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
      if (!z?.Id) return undefined;
      return {
        id: stripPrefix(z.Id),
        label: `hosted zone ${stripPrefix(z.Id)} (${candidate})`,
        ...(typeof z.ResourceRecordSetCount === 'number'
          ? { setCount: z.ResourceRecordSetCount }
          : {}),
      };
    },
    (owner, tried) =>
      new ProviderError(
        name,
        `no public hosted zone found for ${owner} (looked for ${tried.join(', ')}); create the zone, check the account of the credentials, or set hosted_zone_id`,
      ),
  );
  const zoneFor = (owner: string): Promise<Zone> =>
    zoneIdOption
      ? Promise.resolve({ id: zoneIdOption, label: `hosted zone ${zoneIdOption}` })
      : findZone(owner);

  /** The record sets at the owner name that matter: TLSA and CNAME (and TXT, `through` it).
   *  Starts the listing at the owner name (no type), so the sets there come first, sorted by
   *  type; pages on while the listing is still at the owner name and has not passed `through`. */
  async function readName(
    zone: Zone,
    owner: string,
    through: 'TLSA' | 'TXT' = 'TLSA',
  ): Promise<NameState> {
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
        if (s.Type === 'TXT' && through === 'TXT') {
          if (s.SetIdentifier || s.AliasTarget || state.txt) {
            throw new ProviderError(
              name,
              `${owner} in ${zone.label} has a TXT record set with a routing policy or alias; tlsa writes only simple record sets`,
            );
          }
          state.txt = s;
        }
      }
      const next = out.NextRecordName;
      const nextType = out.NextRecordType;
      // Types at one name come sorted: once the listing is past `through` (and so past CNAME),
      // stop.
      if (
        done ||
        !out.IsTruncated ||
        !next ||
        !nextType ||
        !sameName(next, owner) ||
        nextType > through
      )
        break;
      startName = next;
      startType = nextType;
    }
    return state;
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

  return { call, zoneFor, readName, readMany };
}

/** Whole owners (their DELETE and CREATE together) packed into batches within the limits. */
export function pack(name: string, zone: Zone, units: Unit[]): Unit[][] {
  const batches: Unit[][] = [];
  let cur: Unit[] = [];
  let size = { changes: 0, values: 0, chars: 0 };
  for (const u of units) {
    if (u.values > MAX_BATCH_VALUES || u.chars > MAX_BATCH_CHARS) {
      throw new ProviderError(
        name,
        `${u.want.owner} in ${zone.label}: its TLSA set is too large for one Route 53 change batch (${u.values} values, ${u.chars} characters; at most ${MAX_BATCH_VALUES} and ${MAX_BATCH_CHARS})`,
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
  return batches;
}

/** Route 53 names: trailing dot optional, case-insensitive, special characters as \ddd. */
export function sameName(a: string, b: string): boolean {
  return nameKey(a) === nameKey(b);
}

/** A name as a map key: the form sameName() compares. */
function nameKey(s: string): string {
  const x = s
    .toLowerCase()
    .replace(/\\(\d{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return x.endsWith('.') ? x : `${x}.`;
}

export function stripPrefix(id: string): string {
  return id.replace(/^\/?(hostedzone|change)\//, '');
}
