/**
 * The zone reads of listMany() (the engine plans from them) kept as the base of the next write
 * to the same zone, so that a changed zone costs a PATCH and its read-back instead of a read,
 * a PATCH and a read-back. A base is used only while the zone's serial shows that nobody wrote
 * to the zone through the API since it was read (soa_edit_api raises the serial on every
 * PATCH): the serials of all zones come from one `GET /zones`, taken for a batch of at least
 * two such zones and trusted for SERIALS_FRESH_MS, then taken again while two zones are left
 * (unless the last one vouched for fewer than two: writes that slow make listing every zone
 * per write a loss); a zone whose serial moved, a lone zone, or a write after that is read
 * afresh, as before. Writes that bypass the API (pdnsutil, the
 * database) do not move the serial: a base older than BASE_MAX_AGE_MS is not used.
 */
import { serialTracksWrites, type Zone, type ZoneState } from './powerdns-api.js';

/** How long one `GET /zones` vouches for the zones written after it: about the read-to-write
 *  time of a zone read just before its PATCH on a loaded machine. */
export const SERIALS_FRESH_MS = 1_000;
/** The oldest listMany() read used as a write's base (a run plans, then writes). */
export const BASE_MAX_AGE_MS = 60_000;

interface Base {
  state: ZoneState;
  owners: Set<string>;
  at: number;
}

export function listedBases(
  zoneSerials: () => Promise<Map<string, number>>,
  now = () => Date.now(),
) {
  const bases = new Map<string, Base>();
  let serials: { byZone: Map<string, number>; at: number; vouched: number } | undefined;
  let batchLeft = 0;
  /** Set when a zone list went stale before it vouched for two zones (the writes are slower
   *  than SERIALS_FRESH_MS): listing every zone for each one would cost more than reading it. */
  let tooSlow = false;

  return {
    /** listMany() read `owners` of zone `z` (the whole zone, disabled records included). */
    keep(z: Zone, owners: string[], state: ZoneState): void {
      if (serialTracksWrites(state)) bases.set(z.id, { state, owners: new Set(owners), at: now() });
      else bases.delete(z.id);
    },

    /** A batch is about to write to these zones. */
    batch(zoneIds: string[]): void {
      const at = now();
      tooSlow = false;
      serials = undefined;
      batchLeft = new Set(
        zoneIds.filter((id) => (bases.get(id)?.at ?? -Infinity) > at - BASE_MAX_AGE_MS),
      ).size;
    },

    /** The base for a write of `owners` in zone `z`, if it is still what the server has; used
     *  once (a later write reads afresh). */
    async take(z: Zone, owners: string[]): Promise<ZoneState | undefined> {
      const base = bases.get(z.id);
      bases.delete(z.id);
      if (!base || base.at <= now() - BASE_MAX_AGE_MS) return undefined;
      const othersLeft = --batchLeft;
      if (!owners.every((o) => base.owners.has(o))) return undefined;
      if (!serials || serials.at <= now() - SERIALS_FRESH_MS) {
        if (serials && serials.vouched < 2) tooSlow = true;
        // A read of this one zone costs as much as the list, and is fresher.
        if (othersLeft < 1 || tooSlow) return undefined;
        serials = { byZone: await zoneSerials(), at: now(), vouched: 0 };
      }
      if (serials.byZone.get(z.id) !== base.state.serial) return undefined;
      serials.vouched++;
      return base.state;
    },

    /** A write went to zone `z` (its serial moved: its base and the serials are stale). */
    wrote(z: Zone): void {
      bases.delete(z.id);
      serials?.byZone.delete(z.id);
    },
  };
}
