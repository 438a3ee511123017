/**
 * desec's TXT records (contract.ts TxtRecords, for ACME DNS-01): the same read-modify-write as
 * its TLSA records (desec.ts, kit-rrset.ts verifiedWrites) on the owner's TXT RRset: read the
 * name (`?subname=S`, so a CNAME there is seen), compute the new set (every value not named
 * kept, foreign ones included), write it with one `PATCH /domains/D/rrsets/` (`records: []`
 * deletes it), read back after `settle_ms` and write again what another writer overwrote.
 * deSEC takes TXT records only as quoted character-strings (`"value"`; bare text is answered
 * 400 "Data for TXT records must be given using quotation marks.") and stores them in
 * canonical form (RFC 1035 decimal escapes). The TTL of the set becomes `ttl` when a value is
 * added (raised to the domain's minimum_ttl); adding values already there writes nothing. A
 * token scoped by policies needs {"subname": "_acme-challenge…", "type": "TXT",
 * "perm_write": true}.
 */
import type { TxtRecords } from './contract.js';
import { type Domain, type desecApi, HttpFailure, type NameState } from './desec-api.js';
import { type SetWrite, type SetWant, verifiedWrites } from './kit-rrset.js';
import {
  namingOwner,
  parseTxt,
  presentKeepsTtl,
  txtArgs,
  txtCnameError,
  txtKeyOf,
  txtWant,
} from './txt.js';

const keyOf = txtKeyOf();

export function desecTxt(
  api: ReturnType<typeof desecApi>,
  cfg: { name: string; settleMs: number; attempts: number; fail: (message: string) => Error },
): TxtRecords {
  const { name, fail } = cfg;

  async function read(owner: string): Promise<{ d: Domain; sub: string; state?: NameState }> {
    const d = await api.domainFor(owner);
    const sub = api.subnameOf(owner, d);
    return { d, sub, state: (await api.readNames(d, new Set([sub]))).get(sub) };
  }

  async function write(d: Domain, sub: string, w: SetWrite<SetWant>): Promise<string | undefined> {
    const item = {
      subname: sub,
      type: 'TXT',
      records: w.records.map((r) => r.content),
      ...(w.records.length ? { ttl: w.ttl } : {}),
    };
    try {
      const url = `${api.apiBase}/domains/${encodeURIComponent(d.name)}/rrsets/`;
      const a = await api.exchange('PATCH', url, `writing ${w.want.owner} TXT`, [item], [], true);
      const answer = Array.isArray(a.body) ? (a.body as Array<{ touched?: unknown }>) : [];
      return typeof answer[0]?.touched === 'string' ? answer[0].touched : undefined;
    } catch (e) {
      if (!(e instanceof HttpFailure)) throw e;
      if (e.messages.some((m) => /alongside CNAME/i.test(m)))
        throw txtCnameError(name, w.want.owner, `deSEC domain ${d.name}`);
      if (e.status === 403)
        throw fail(
          `the token may not write TXT at "${sub}" in domain ${d.name} (HTTP 403: ${e.message}); give it a scoping policy {"domain": "${d.name}", "subname": "${sub}", "type": "TXT", "perm_write": true}`,
        );
      throw fail(
        `deSEC rejected the TXT RRset at ${w.want.owner} (HTTP ${e.status}): ${e.message}`,
      );
    }
  }

  async function change(ownerIn: string, valuesIn: string[], adding: boolean, ttl = 0) {
    const { owner, values } = txtArgs(name, ownerIn, valuesIn, adding ? ttl : undefined);
    if (!values.length) return;
    await namingOwner(name, owner, adding ? 'adding' : 'removing', async () => {
      const d = await api.domainFor(owner);
      const sub = api.subnameOf(owner, d);
      const addTtl = Math.max(ttl, d.minimumTtl);
      const asked = txtWant(owner, adding ? { add: values } : { remove: values }, addTtl);
      const rrsetOf = (state: NameState | undefined) =>
        state?.txt && {
          ttl: state.txt.ttl,
          records: state.txt.records.map((content) => ({ content })),
        };
      await verifiedWrites<NameState | undefined, SetWant>([asked], {
        async read() {
          const { state } = await read(owner);
          if (state?.cname !== undefined)
            throw txtCnameError(name, owner, `deSEC domain ${d.name}`, state.cname);
          // Values all there already: nothing to write, not even the TTL.
          asked.ttl = presentKeepsTtl({ ...asked, ttl: addTtl }, rrsetOf(state), keyOf).ttl;
          return state;
        },
        rrset: (state) => rrsetOf(state),
        async write(writes) {
          const stamp = await write(d, sub, writes[0]!);
          return (after) => after?.txt?.touched === stamp;
        },
        keyOf,
        type: 'TXT',
        settleMs: cfg.settleMs,
        attempts: cfg.attempts,
        fail,
        where: `in deSEC domain ${d.name}`,
      });
    });
  }

  return {
    async list(ownerIn) {
      const { owner } = txtArgs(name, ownerIn, []);
      return namingOwner(name, owner, 'reading', async () =>
        ((await read(owner)).state?.txt?.records ?? []).flatMap((r) => parseTxt(r) ?? []),
      );
    },
    add: (owner, values, ttl) => change(owner, values, true, ttl),
    remove: (owner, values) => change(owner, values, false),
  };
}
