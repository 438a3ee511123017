/** The records tlsa's state file says it owns, as the lab reads them (state.json). */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface OwnedRecordJson {
  owner: string;
  usage: number;
  selector: number;
  matching: number;
  data: string;
  status: string;
  publishedAt?: string;
  seenAt?: string;
  retiringSince?: string;
  addedAt: string;
  by: string;
}

/** `U S M data` in lower case, as the lab's DNS queries print it. */
export const rdataOfOwned = (r: OwnedRecordJson): string =>
  `${r.usage} ${r.selector} ${r.matching} ${r.data.toLowerCase()}`;

/** The owned records in stateDir/state.json ([] before the first run). */
export function readOwnedRecords(stateDir: string): OwnedRecordJson[] {
  const f = join(stateDir, 'state.json');
  return existsSync(f)
    ? (JSON.parse(readFileSync(f, 'utf8')) as { records: OwnedRecordJson[] }).records
    : [];
}
