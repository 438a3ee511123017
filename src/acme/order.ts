/** One certificate order with acme-client (RFC 8555): account, order (with the profile when the
 *  directory offers it), challenge answers (HTTP-01 or DNS-01) for the order's duration only,
 *  finalize, download. */
import { Agent } from 'node:https';
import * as acme from 'acme-client';
import type { AcmeKeyType } from '../config/schema.js';
import { NetworkError, ProviderError } from '../errors.js';
import {
  type CaProblem,
  isProblem,
  RateLimitedError,
  rateLimitedUntil,
  watchCaProblems,
} from './ca-problem.js';
import type { AcmeDirectory } from './directory.js';
import { answerChallenges } from './challenge-loop.js';
import type { ChallengeSolver } from './challenges.js';

export interface OrderInput {
  service: string;
  directoryUrl: string;
  directory: AcmeDirectory;
  accountKey: string;
  contact?: string[];
  eab?: { kid: string; hmacKey: string };
  ca?: string;
  names: string[];
  profile?: string;
  /** The ARI id of the certificate this order replaces (RFC 9773 §5), when the CA has ARI. */
  replaces?: string;
  keyPem: string;
  /** Publishes the answers of the order's challenges (challenges.ts). */
  solver: () => Promise<ChallengeSolver>;
  progress?: (line: string) => void;
}

export async function createKey(type: AcmeKeyType): Promise<string> {
  const buf =
    type === 'ecdsa-p256'
      ? await acme.crypto.createPrivateEcdsaKey('P-256')
      : type === 'ecdsa-p384'
        ? await acme.crypto.createPrivateEcdsaKey('P-384')
        : await acme.crypto.createPrivateRsaKey(Number(type.slice('rsa-'.length)));
  return buf.toString();
}

export const createAccountKey = (): Promise<string> => createKey('ecdsa-p256');

/** acme-client's errors as tlsa's: a CA that cannot be reached is a network error, a refusal
 *  (a failed challenge, …) a provider error, rateLimited one that says until when; all exit 3. */
function asTlsaError(service: string, e: unknown, problem: CaProblem | undefined): Error {
  if (e instanceof NetworkError || e instanceof ProviderError) return e;
  const err = e as { code?: string; message?: string };
  if (err.code && /^E[A-Z]+$/.test(err.code))
    return new NetworkError(`ACME (${service}): the CA cannot be reached: ${err.code}`);
  if (problem && (isProblem(problem, 'rateLimited') || problem.status === 429))
    return new RateLimitedError(
      `acme(${service})`,
      rateLimitedUntil(problem, new Date()),
      problem.detail ?? err.message ?? 'rateLimited',
    );
  return new ProviderError(`acme(${service})`, err.message ?? String(e), { cause: e });
}

/** newOrder, with `replaces` when given; a CA that says the old certificate was already
 *  replaced (RFC 9773 §5: alreadyReplaced, 409) gets the order once more without it. */
async function createOrder(
  client: acme.Client,
  input: OrderInput,
  lastProblem: () => CaProblem | undefined,
): Promise<acme.Order> {
  const order = (replaces: string | undefined) =>
    client.createOrder({
      identifiers: input.names.map((value) => ({ type: 'dns', value })),
      ...(input.profile ? { profile: input.profile } : {}),
      ...(replaces ? { replaces } : {}),
    });
  try {
    return await order(input.replaces);
  } catch (e) {
    const p = lastProblem();
    if (!input.replaces || !(isProblem(p, 'alreadyReplaced') || p?.status === 409)) throw e;
    input.progress?.(
      `${input.service}: the CA says the old certificate was already replaced (${p?.detail ?? 'alreadyReplaced'}); ordering without "replaces"`,
    );
    return order(undefined);
  }
}

/** The account of this key: looked up first (acme-client would otherwise send the creation
 *  fields again as an account update, which CAs refuse), created when the CA does not know it. */
async function findOrCreateAccount(
  client: acme.Client,
  contact: string[] | undefined,
): Promise<void> {
  try {
    await client.createAccount({ onlyReturnExisting: true });
  } catch (e) {
    if ((e as { code?: string }).code) throw e; // the CA cannot be reached: no use asking again
    await client.createAccount({ termsOfServiceAgreed: true, ...(contact ? { contact } : {}) });
  }
}

export async function orderCertificate(input: OrderInput): Promise<string> {
  if (input.ca) acme.axios.defaults.httpsAgent = new Agent({ ca: input.ca });
  const client = new acme.Client({
    directoryUrl: input.directoryUrl,
    accountKey: input.accountKey,
    backoffAttempts: 20,
    backoffMin: 500,
    backoffMax: 5000,
    ...(input.eab ? { externalAccountBinding: input.eab } : {}),
  });
  let solver: ChallengeSolver | undefined;
  const problems = watchCaProblems();
  try {
    await findOrCreateAccount(client, input.contact);
    const order = await createOrder(client, input, problems.last);
    const authzs = await client.getAuthorizations(order);
    solver = await input.solver();
    await answerChallenges(client, authzs, solver, input.service);
    await solver.close();
    const [, csr] = await acme.crypto.createCsr(
      { commonName: input.names[0]!, altNames: input.names },
      input.keyPem,
    );
    const finalized = await client.finalizeOrder(order, csr);
    return await client.getCertificate(finalized);
  } catch (e) {
    throw asTlsaError(input.service, e, problems.last());
  } finally {
    problems.stop();
    await solver?.close();
  }
}
