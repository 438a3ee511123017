/**
 * TLS alert numbers and names (RFC 8446 §6 and RFC 5246 §7.2, plus the IANA registry entries
 * still seen on the wire), and the mapping of Node/OpenSSL handshake errors onto them.
 *
 * When OpenSSL receives an alert it fails with a message ending in "SSL alert number N" and
 * Node sets `err.code` to `ERR_SSL_<REASON>`, e.g. `ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION` or
 * `ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE` (OpenSSL's reason names say "sslv3"/"tlsv1"/"tlsv13"
 * for the protocol that introduced the alert, not for the one in use).
 */

export interface TlsAlert {
  number: number;
  name: string;
}

/** Alert description numbers → RFC names. */
export const TLS_ALERTS: Readonly<Record<number, string>> = {
  0: 'close_notify',
  10: 'unexpected_message',
  20: 'bad_record_mac',
  21: 'decryption_failed',
  22: 'record_overflow',
  30: 'decompression_failure',
  40: 'handshake_failure',
  41: 'no_certificate',
  42: 'bad_certificate',
  43: 'unsupported_certificate',
  44: 'certificate_revoked',
  45: 'certificate_expired',
  46: 'certificate_unknown',
  47: 'illegal_parameter',
  48: 'unknown_ca',
  49: 'access_denied',
  50: 'decode_error',
  51: 'decrypt_error',
  60: 'export_restriction',
  70: 'protocol_version',
  71: 'insufficient_security',
  80: 'internal_error',
  86: 'inappropriate_fallback',
  90: 'user_canceled',
  100: 'no_renegotiation',
  109: 'missing_extension',
  110: 'unsupported_extension',
  111: 'certificate_unobtainable',
  112: 'unrecognized_name',
  113: 'bad_certificate_status_response',
  114: 'bad_certificate_hash_value',
  115: 'unknown_psk_identity',
  116: 'certificate_required',
  120: 'no_application_protocol',
};

/** The alert with this number; unknown numbers get the name `alert_N`. */
export function alertByNumber(n: number): TlsAlert {
  return { number: n, name: TLS_ALERTS[n] ?? `alert_${n}` };
}

/**
 * OpenSSL reason names (as in Node's `ERR_SSL_*` codes, without the prefix) for received alerts
 * whose wording differs from the RFC name, e.g. TLSV1_UNRECOGNIZED_NAME (no "ALERT").
 */
const OPENSSL_REASON_ALIASES: Readonly<Record<string, number>> = {
  TLSV1_UNRECOGNIZED_NAME: 112,
  TLSV1_BAD_CERTIFICATE_STATUS_RESPONSE: 113,
  TLSV1_BAD_CERTIFICATE_HASH_VALUE: 114,
  TLSV1_CERTIFICATE_UNOBTAINABLE: 111,
  TLSV1_ALERT_DECRYPTION_FAILED: 21,
  SSLV3_ALERT_NO_CERTIFICATE: 41,
};

const NAME_TO_NUMBER: ReadonlyMap<string, number> = new Map(
  Object.entries(TLS_ALERTS).map(([n, name]) => [name.replace(/_/g, '').toUpperCase(), Number(n)]),
);

/**
 * The alert a TLS error reports as received from the peer, or undefined when the error is not
 * about a received alert (a local failure such as "wrong version number").
 * Looks at "SSL alert number N" in the message first, then at the `ERR_SSL_*ALERT*` code.
 */
export function alertFromError(err: unknown): TlsAlert | undefined {
  const e = err as { message?: unknown; code?: unknown } | null | undefined;
  const message = typeof e?.message === 'string' ? e.message : '';
  const m = /alert number (\d{1,3})\b/i.exec(message);
  if (m) return alertByNumber(Number(m[1]));
  const code = typeof e?.code === 'string' ? e.code : '';
  const c = /^ERR_SSL_((?:SSLV3|TLSV1|TLSV13)_(?:ALERT_)?([A-Z0-9_]+))$/.exec(code);
  if (!c) return undefined;
  const reason = c[1]!;
  const alias = OPENSSL_REASON_ALIASES[reason];
  if (alias !== undefined) return alertByNumber(alias);
  if (!reason.includes('_ALERT_')) return undefined;
  const n = NAME_TO_NUMBER.get(c[2]!.replace(/_/g, ''));
  return n === undefined ? undefined : alertByNumber(n);
}

/** The OpenSSL reason of a TLS error, e.g. "wrong version number" or "unsupported protocol". */
export function opensslReason(err: unknown): string {
  const e = err as { message?: unknown; reason?: unknown; code?: unknown } | null | undefined;
  if (typeof e?.reason === 'string' && e.reason) return e.reason;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  // "…:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/…:354:"
  const m = /SSL routines:[^:]*:([^:]+)/.exec(message);
  return m ? m[1]!.trim() : message;
}
