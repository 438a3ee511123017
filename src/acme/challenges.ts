/** The answers of one order's challenges, whatever their type: the order's loop publishes all
 *  of them, then tells the CA, then takes them away (order.ts). HTTP-01 serves files or a small
 *  server (http01.ts); DNS-01 writes TXT records through a provider (dns01.ts). */
import type { Http01Responder } from './http01.js';

export type ChallengeType = 'http-01' | 'dns-01';

export interface ChallengeAnswer {
  /** The identifier as the authorization names it: without "*." for a wildcard. */
  name: string;
  wildcard: boolean;
  token: string;
  /** What the CA looks for: the key authorization (http-01) or its digest (dns-01), as
   *  acme-client's getChallengeKeyAuthorization() gives it for the challenge's type. */
  keyAuthorization: string;
}

export interface ChallengeSolver {
  readonly type: ChallengeType;
  /** Make every answer of the order available; resolves once the CA can see them all. */
  publish(answers: ChallengeAnswer[]): Promise<void>;
  /** Take every answer away; safe to call twice. A failed removal is reported (and, for
   *  DNS-01, recorded for the next run), never thrown over the order's own outcome. */
  close(): Promise<void>;
}

/** "*.example.org" for a wildcard's authorization, else the name. */
export const shownName = (a: Pick<ChallengeAnswer, 'name' | 'wildcard'>): string =>
  a.wildcard ? `*.${a.name}` : a.name;

export function http01Solver(responder: Http01Responder): ChallengeSolver {
  return {
    type: 'http-01',
    async publish(answers) {
      for (const a of answers) await responder.add(a.token, a.keyAuthorization);
    },
    close: () => responder.close(),
  };
}
