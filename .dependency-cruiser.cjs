// The layers of tlsa, lowest first (docs/architecture.md draws them). A module may import its own
// layer and the layers below it, never one above, and no import may close a circle.
const layers = [
  ['^src/errors\\.ts$'],
  ['^src/util/'],
  ['^src/tlsa/', '^src/dns/', '^src/certs/'],
  ['^src/issuers/'],
  ['^src/verify/', '^providers/'],
  ['^src/config/'],
  ['^src/acme/'],
  ['^src/engine/', '^src/doctor/'],
  ['^src/monitor/'],
  ['^src/cli/'],
];

const upward = layers.slice(0, -1).map((paths, i) => ({
  name: `no-upward-from-layer-${i + 1}`,
  comment: `${paths.join(', ')} may not import a higher layer`,
  severity: 'error',
  from: { path: paths },
  to: { path: layers.slice(i + 1).flat() },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'modules that import each other in a loop cannot be understood one at a time',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...upward,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
