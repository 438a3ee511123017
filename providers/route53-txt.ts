/**
 * route53's TXT records (contract.ts TxtRecords, for ACME DNS-01): the same conditional write
 * as its TLSA records (route53.ts), on the TXT record set at the owner: read it, then ONE
 * ChangeResourceRecordSets batch of DELETE (the exact TTL and values read) + CREATE (the new
 * set); another writer's change in between makes the batch fail (InvalidChangeBatch), and the
 * set is read again (6 attempts). Values not named stay, foreign ones included. A CNAME at the
 * owner is reported, never replaced. Route 53 wants each TXT string in double quotes
 * (`"value"`; unquoted it answers InvalidCharacterString), `"` and `\` escaped with `\`,
 * other bytes outside printable ASCII as \ooo OCTAL escapes, at most 255 characters a string
 * (longer values are split). The set's TTL becomes `ttl` when a value is added; adding values
 * already there writes nothing. IAM: the TLSA policy in route53.ts with "TXT" added to
 * route53:ChangeResourceRecordSetsRecordTypes.
 */
import { type Change, ChangeResourceRecordSetsCommand } from '@aws-sdk/client-route-53';
import { ProviderError, type TxtRecords } from './contract.js';
import { retryOnConflict } from './kit.js';
import { nextRRset } from './kit-rrset.js';
import type { NameState, route53Api } from './route53-api.js';
import {
  namingOwner,
  parseTxt,
  presentKeepsTtl,
  txtArgs,
  txtCnameError,
  txtKeyOf,
  txtWant,
} from './txt.js';

const keyOf = txtKeyOf('octal');
const ATTEMPTS = 6;

const valuesOf = (state: NameState) =>
  (state.txt?.ResourceRecords ?? []).flatMap(
    (r) => parseTxt(r.Value ?? '', { escapes: 'octal' }) ?? [],
  );

/** `pending` collects the ids of changes not yet INSYNC, for the provider's waitUntilApplied. */
export function route53Txt(
  name: string,
  api: Pick<ReturnType<typeof route53Api>, 'call' | 'zoneFor' | 'readName'>,
  pending: string[],
): TxtRecords {
  const { call, zoneFor, readName } = api;

  async function change(ownerIn: string, valuesIn: string[], adding: boolean, ttl = 0) {
    const { owner, values } = txtArgs(name, ownerIn, valuesIn, adding ? ttl : undefined);
    if (!values.length) return;
    await namingOwner(name, owner, adding ? 'adding' : 'removing', async () => {
      const zone = await zoneFor(owner);
      const asked = txtWant(owner, adding ? { add: values } : { remove: values }, ttl, 'octal');
      await retryOnConflict(
        async () => {
          const state = await readName(zone, owner, 'TXT');
          if (state.cname)
            throw txtCnameError(name, owner, zone.label, state.cname.ResourceRecords?.[0]?.Value);
          const set = state.txt;
          const now = set && {
            ttl: set.TTL,
            records: (set.ResourceRecords ?? []).map((r) => ({ content: r.Value ?? '' })),
          };
          const next = nextRRset(presentKeepsTtl(asked, now, keyOf), now, keyOf);
          if (!next) return;
          const changes: Change[] = [];
          if (set) {
            const { Name, TTL, ResourceRecords } = set;
            changes.push({
              Action: 'DELETE',
              ResourceRecordSet: { Name, Type: 'TXT', TTL, ResourceRecords },
            });
          }
          if (next.records.length)
            changes.push({
              Action: 'CREATE',
              ResourceRecordSet: {
                Name: set?.Name ?? owner,
                Type: 'TXT',
                TTL: next.ttl,
                ResourceRecords: next.records.map((r) => ({ Value: r.content })),
              },
            });
          const comment = `tlsa: TXT ${adding ? '+' : '-'}${values.length} at ${owner}`;
          const out = await call('ChangeResourceRecordSets', `${owner} in ${zone.label}`, (c) =>
            c.send(
              new ChangeResourceRecordSetsCommand({
                HostedZoneId: zone.id,
                ChangeBatch: { Comment: comment.slice(0, 256), Changes: changes },
              }),
            ),
          ).catch((e: unknown) => {
            // A CNAME that appeared after our read: Route 53 refuses the batch; say it for TXT.
            if (e instanceof ProviderError && /beside the CNAME/.test(e.message))
              throw txtCnameError(name, owner, zone.label);
            throw e;
          });
          if (out.ChangeInfo?.Id && out.ChangeInfo.Status !== 'INSYNC')
            pending.push(out.ChangeInfo.Id);
        },
        ATTEMPTS,
        (e) =>
          new ProviderError(
            name,
            `the TXT record set at ${owner} in ${zone.label} kept changing under us (${ATTEMPTS} attempts; last: ${e.message}); another writer is busy there, run again`,
          ),
      );
    });
  }

  return {
    async list(ownerIn) {
      const { owner } = txtArgs(name, ownerIn, []);
      return namingOwner(name, owner, 'reading', async () =>
        valuesOf(await readName(await zoneFor(owner), owner, 'TXT')),
      );
    },
    add: (owner, values, ttl) => change(owner, values, true, ttl),
    remove: (owner, values) => change(owner, values, false),
  };
}
