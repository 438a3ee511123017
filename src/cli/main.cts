#!/usr/bin/env node
/** The package's bin as `tsc` alone builds it: the unbundled CLI (main.ts), started from a
 *  CommonJS file so that bin, hooks and units name one path whether or not the CLI was
 *  bundled. `npm run build` replaces this file with the bundle's launcher (launcher.ts). */
void import('./main.js');
