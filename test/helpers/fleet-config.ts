/** A fleet's configuration as bench/scale.ts writes it: 5 lines of head (the first one given),
 *  then 8 lines per service (one owner, two lineages), service i starting at line 6 + 8i. */
export function fleetConfigLines(n: number, head = 'state_dir: state', live = 'live'): string[] {
  const lines = [
    head,
    'providers:',
    '  local: {type: zonefile, path: z.zone, create: true}',
    'verify: {propagation: false, probe: false}',
    'services:',
  ];
  for (let i = 0; i < n; i++)
    lines.push(
      `  s${i}:`,
      `    host: mx${i}.example.org`,
      '    ports: [25]',
      '    provider: local',
      '    records: ["3 1 1", "2 1 1"]',
      '    certificates:',
      `      - lineage: ${live}/mx.example.org`,
      `      - lineage: ${live}/mx.example.org-rsa`,
    );
  return lines;
}
