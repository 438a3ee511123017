/** Built-in ACME in the mail lab (test/lab/mail-lab.ts): the service's `acme:` block for the
 *  lab's pebble, and where `tlsa renew` keeps the lineages and next keys of the service "mx". */
import { join } from 'node:path';
import type { MailLab } from './mail-lab.js';

export type AcmeKeyType = 'ecdsa-p256' | 'rsa-2048';
export const KEY_FAMILY: Record<AcmeKeyType, 'ecdsa' | 'rsa'> = {
  'ecdsa-p256': 'ecdsa',
  'rsa-2048': 'rsa',
};

/** The service's `acme:` block (indented for MailConfig.service): pebble's directory, HTTP-01 on
 *  the port pebble's VA connects to (certbot's, when certbot is not running). */
export function acmeLines(lab: MailLab, keyTypes: readonly AcmeKeyType[]): string[] {
  const s = JSON.stringify;
  return [
    '    acme:',
    `      directory: ${s(lab.pebble.directoryUrl)}`,
    `      key_types: [${keyTypes.join(', ')}]`,
    `      challenge: {http01: {standalone: "127.0.0.1:${lab.pebble.httpPort}"}}`,
    `      ca_bundle: ${s(lab.pebble.tlsCaPath)}`,
  ];
}

/** STATE_DIR/acme/mx/KEY_TYPE: the lineage `tlsa renew` keeps for the lab's service "mx". */
export const acmeLineage = (lab: MailLab, k: AcmeKeyType): string =>
  join(lab.stateDir, 'acme', 'mx', k);
export const nextKeyFile = (lab: MailLab, k: AcmeKeyType): string =>
  join(lab.stateDir, 'acme', 'mx', 'next', `${k}.key`);
