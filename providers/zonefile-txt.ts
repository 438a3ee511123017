/**
 * zonefile's TXT records (contract.ts TxtRecords, for ACME DNS-01): lines in `path`, written
 * under the same lock, with the same SOA serial bump and reload as its TLSA lines (zonefile.ts).
 *
 * add() appends `OWNER TTL IN TXT "value" ; tlsa:managed` for each value not already at the
 * owner (in `path` or an $INCLUDEd file); beside TXT lines already there it takes their TTL,
 * so the RRset keeps one TTL and no foreign line is rewritten. Values are written in double
 * quotes with RFC 1035 escapes (ASCII only), so the servers and tlsa read them back alike.
 * remove() takes out the lines of `path` whose value is named: the line tlsa wrote; an
 * unmarked line only when no marked twin exists (as for TLSA). A line after a removed one
 * that inherited its owner (it starts with a blank) gets that owner written in front, so it
 * keeps its name. A CNAME at the owner is reported, never replaced.
 */
import type { TxtRecords } from './contract.js';
import { MANAGED_MARK, type Entry, withoutEntries } from './zonefile-parse.js';
import { namingOwner, quoteTxt, txtArgs, txtCnameError } from './txt.js';

interface Located {
  file: string;
  entry: Entry;
}

export function zonefileTxt(cfg: {
  name: string;
  /** Every entry of the zone and its includes, read now. */
  read: () => Located[];
  /** A read-modify-write of `path` under its lock (undefined from `edit`: nothing to write). */
  rewrite: (edit: (main: Entry[], all: Located[]) => Entry[] | undefined) => Promise<void>;
  flush: () => Promise<void>;
}): TxtRecords {
  const { name } = cfg;
  const txtAt = (all: Located[], owner: string) =>
    all.filter(({ entry: e }) => e.other?.owner === owner && e.txt !== undefined);

  return {
    async list(ownerIn) {
      const { owner } = txtArgs(name, ownerIn, []);
      return txtAt(cfg.read(), owner).map(({ entry: e }) => e.txt!);
    },
    async add(ownerIn, valuesIn, ttl) {
      const { owner, values } = txtArgs(name, ownerIn, valuesIn, ttl);
      if (!values.length) return;
      await namingOwner(name, owner, 'adding', () =>
        cfg.rewrite((main, all) => {
          const alias = all.find(
            ({ entry: e }) => e.other?.type === 'CNAME' && e.other.owner === owner,
          );
          if (alias) throw txtCnameError(name, owner, alias.file);
          const there = txtAt(all, owner);
          const present = new Set(there.map(({ entry: e }) => e.txt));
          const setTtl = there.find(({ entry: e }) => e.ttl !== undefined)?.entry.ttl ?? ttl;
          const added = values
            .filter((v) => !present.has(v))
            .map(
              (v): Entry => ({
                lines: [`${owner} ${setTtl} IN TXT ${quoteTxt(v)} ${MANAGED_MARK}`],
                line: 0,
                other: { owner, type: 'TXT' },
                txt: v,
                ttl: setTtl,
                managed: true,
              }),
            );
          return added.length ? [...main, ...added] : undefined;
        }),
      );
    },
    async remove(ownerIn, valuesIn) {
      const { owner, values } = txtArgs(name, ownerIn, valuesIn);
      if (!values.length) return;
      const named = new Set(values);
      await namingOwner(name, owner, 'removing', () =>
        cfg.rewrite((main) => {
          const at = main.filter(
            (e) => e.other?.owner === owner && e.txt !== undefined && named.has(e.txt),
          );
          const marked = new Set(at.filter((e) => e.managed).map((e) => e.txt));
          const drop = new Set(at.filter((e) => e.managed || !marked.has(e.txt)));
          return drop.size ? withoutEntries(main, drop) : undefined;
        }),
      );
    },
    flush: () => cfg.flush(),
  };
}
