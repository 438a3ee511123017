/** The next keys of built-in ACME lineages: one private key per service and key type, kept in
 *  STATE_DIR/acme/SERVICE/next/KEY_TYPE.key (0600) until a renewal uses it. Its 3 1 1 is
 *  published from the moment it exists, so that a renewal with it can be served at once. */
import { createPublicKey } from 'node:crypto';
import { join } from 'node:path';
import type { AcmeKeyType } from '../config/schema.js';
import { matchData } from '../tlsa/association.js';
import { readKeyFile } from './key-file.js';

export function nextKeyPath(stateDir: string, service: string, keyType: AcmeKeyType): string {
  return join(stateDir, 'acme', service, 'next', `${keyType}.key`);
}

export interface NextKey {
  keyType: AcmeKeyType;
  label: string;
  pem: string;
  spki: Buffer;
  /** SHA2-256 of the SPKI, hex: the data of its 3 1 1. */
  spkiSha256: string;
}

export function readNextKey(
  stateDir: string,
  service: string,
  keyType: AcmeKeyType,
): NextKey | undefined {
  const pem = readKeyFile(nextKeyPath(stateDir, service, keyType));
  if (pem === undefined) return undefined;
  const spki = createPublicKey(pem).export({ type: 'spki', format: 'der' });
  return {
    keyType,
    label: `next ${keyType} key of ${service}`,
    pem,
    spki,
    spkiSha256: matchData(spki, 1),
  };
}

export function nextKeysOf(
  stateDir: string,
  service: string,
  keyTypes: readonly AcmeKeyType[],
): NextKey[] {
  return keyTypes.flatMap((k) => readNextKey(stateDir, service, k) ?? []);
}
