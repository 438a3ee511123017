/** exec's TXT records (contract.ts TxtRecords, for ACME DNS-01): the txt-list, txt-add and
 *  txt-remove requests of the exec protocol (exec.ts), each answered with the values at the
 *  owner afterwards, which are checked: an add that did not land, a remove that left a value,
 *  or no answer at all (a program that predates TXT) is a ProviderError naming the owner. */
import { ProviderError, type TxtRecords } from './contract.js';
import { namingOwner, txtArgs } from './txt.js';

export function execTxt(name: string, call: (request: object) => Promise<string>): TxtRecords {
  /** One request; the values of its answer. */
  async function ask(action: string, owner: string, extra: object = {}): Promise<string[]> {
    const out = await call({ action, type: 'TXT', owner, ...extra });
    let parsed: { values?: unknown } | undefined;
    try {
      parsed = JSON.parse(out) as { values?: unknown };
    } catch {
      parsed = undefined;
    }
    const values = parsed?.values;
    if (!Array.isArray(values) || values.some((v) => typeof v !== 'string'))
      throw new ProviderError(
        name,
        `${action} for ${owner} must answer {"values": [...]} (the TXT values at the owner afterwards)${out.trim() ? `, not ${out.trim().slice(0, 80)}` : '; the program answered nothing: does it know the TXT actions (txt-list, txt-add, txt-remove)?'}`,
      );
    return values as string[];
  }

  return {
    async list(ownerIn) {
      const { owner } = txtArgs(name, ownerIn, []);
      return namingOwner(name, owner, 'reading', () => ask('txt-list', owner));
    },
    async add(ownerIn, valuesIn, ttl) {
      const { owner, values } = txtArgs(name, ownerIn, valuesIn, ttl);
      if (!values.length) return;
      await namingOwner(name, owner, 'adding', async () => {
        const after = new Set(await ask('txt-add', owner, { ttl, values }));
        const missing = values.filter((v) => !after.has(v));
        if (missing.length)
          throw new ProviderError(
            name,
            `txt-add at ${owner} answered without ${missing.map((v) => JSON.stringify(v)).join(', ')}`,
          );
      });
    },
    async remove(ownerIn, valuesIn) {
      const { owner, values } = txtArgs(name, ownerIn, valuesIn);
      if (!values.length) return;
      await namingOwner(name, owner, 'removing', async () => {
        const after = new Set(await ask('txt-remove', owner, { values }));
        const left = values.filter((v) => after.has(v));
        if (left.length)
          throw new ProviderError(
            name,
            `txt-remove at ${owner} answered with ${left.map((v) => JSON.stringify(v)).join(', ')} still there`,
          );
      });
    },
  };
}
