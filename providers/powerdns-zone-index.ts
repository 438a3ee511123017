/** The zone of an owner name among the server's zones, found by walking the owner's suffixes
 *  down a map: a run with thousands of owners over thousands of zones would otherwise compare
 *  every owner with every zone. */

/** The zones of a listing, and by name (the first of a name, as in the listing). */
export interface ZoneIndex<Z extends { name: string }> {
  list: Z[];
  byName: Map<string, Z>;
}

export function zoneIndex<Z extends { name: string }>(list: Z[]): ZoneIndex<Z> {
  const byName = new Map<string, Z>();
  for (const z of list) if (!byName.has(z.name)) byName.set(z.name, z);
  return { list, byName };
}

/** The longest zone name that is the owner itself or a suffix of it after a "." (the same test
 *  as `owner === z || owner.endsWith("." + z)`, tried longest first). */
export function longestZoneOf<Z>(owner: string, byName: Map<string, Z>): Z | undefined {
  const self = byName.get(owner);
  if (self) return self;
  for (let dot = owner.indexOf('.'); dot !== -1; dot = owner.indexOf('.', dot + 1)) {
    const z = byName.get(owner.slice(dot + 1));
    if (z) return z;
  }
  return undefined;
}
