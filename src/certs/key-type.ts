import type { KeyObject } from 'node:crypto';

/** The key families a CA issues from separate intermediates (Let's Encrypt: RSA → YR*, ECDSA → YE*). */
export type KeyFamily = 'rsa' | 'ecdsa' | 'ed25519' | 'ed448' | 'other';

export interface KeyType {
  family: KeyFamily;
  /** Human form: "RSA 2048", "ECDSA P-256", "Ed25519". */
  label: string;
  bits?: number;
  curve?: string;
}

const CURVES: Record<string, string> = {
  prime256v1: 'P-256',
  secp384r1: 'P-384',
  secp521r1: 'P-521',
};

export function keyTypeOf(key: KeyObject): KeyType {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss': {
      const bits = details.modulusLength;
      return { family: 'rsa', label: `RSA ${bits ?? '?'}`, ...(bits ? { bits } : {}) };
    }
    case 'ec': {
      const curve = CURVES[details.namedCurve ?? ''] ?? details.namedCurve ?? 'unknown curve';
      return { family: 'ecdsa', label: `ECDSA ${curve}`, curve };
    }
    case 'ed25519':
      return { family: 'ed25519', label: 'Ed25519' };
    case 'ed448':
      return { family: 'ed448', label: 'Ed448' };
    default:
      return { family: 'other', label: String(key.asymmetricKeyType) };
  }
}
