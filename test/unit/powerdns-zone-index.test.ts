import { describe, expect, it } from 'vitest';
import { longestZoneOf, zoneIndex } from '../../providers/powerdns-zone-index.js';

/** The rule the index replaces: every zone that is the owner or a suffix after a ".", longest
 *  first, the first of equal length in listing order. */
const byScan = (owner: string, zones: Array<{ name: string; id: string }>) =>
  zones
    .filter((z) => owner === z.name || owner.endsWith(`.${z.name}`))
    .sort((a, b) => b.name.length - a.name.length)[0];

describe('powerdns zone index: the longest zone of an owner name', () => {
  const zones = [
    { name: 'example.org.', id: 'a' },
    { name: 'sub.example.org.', id: 'b' },
    { name: 'org.', id: 'c' },
    { name: 'example.org.', id: 'dup' },
    { name: 'ple.org.', id: 'not-a-label' },
    { name: 'a\\.b.test.', id: 'escaped' },
  ];
  const index = zoneIndex(zones);

  it('finds the same zone as comparing every zone with the owner', () => {
    for (const owner of [
      'example.org.',
      'mx.example.org.',
      '_25._tcp.mx.sub.example.org.',
      'sub.example.org.',
      'xsub.example.org.',
      'other.org.',
      'org.',
      'example.com.',
      'x.a\\.b.test.',
      'b.test.',
      '.',
    ])
      expect(longestZoneOf(owner, index.byName), owner).toBe(byScan(owner, zones));
  });

  it('keeps the first zone of a name, and the listing as it came', () => {
    expect(longestZoneOf('mx.example.org.', index.byName)?.id).toBe('a');
    expect(index.list).toBe(zones);
    expect(longestZoneOf('example.com.', zoneIndex([]).byName)).toBeUndefined();
  });
});
