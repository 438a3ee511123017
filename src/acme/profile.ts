/** ACME profiles: the configured one is sent only when the directory offers it. Pure. */
import { InputError } from '../errors.js';

export interface DirectoryMeta {
  profiles?: Record<string, string>;
}

/** The profile to send in newOrder, or undefined when none is configured. */
export function selectProfile(
  configured: string | undefined,
  meta: DirectoryMeta | undefined,
  directoryUrl: string,
): string | undefined {
  if (configured === undefined) return undefined;
  const offered = Object.keys(meta?.profiles ?? {});
  if (offered.includes(configured)) return configured;
  throw new InputError(
    offered.length
      ? `the ACME directory ${directoryUrl} offers no profile "${configured}" (it offers: ${offered.join(', ')})`
      : `the ACME directory ${directoryUrl} offers no profiles; remove "profile: ${configured}"`,
  );
}
