/** The challenges of one order, whatever their type: every answer is published before the CA
 *  is told of any (DNS-01 then waits once for all of them), then each challenge is answered
 *  and awaited. Taking the answers away is the caller's (in its finally). */
import type * as acme from 'acme-client';
import { ProviderError } from '../errors.js';
import { type ChallengeAnswer, type ChallengeSolver, shownName } from './challenges.js';

export async function answerChallenges(
  client: acme.Client,
  authzs: acme.Authorization[],
  solver: ChallengeSolver,
  service: string,
): Promise<void> {
  const type = solver.type;
  const pending = authzs
    .filter((authz) => authz.status !== 'valid')
    .map((authz) => {
      const challenge = authz.challenges.find((c) => c.type === type);
      const name = shownName({ name: authz.identifier.value, wildcard: !!authz.wildcard });
      if (!challenge)
        throw new ProviderError(
          `acme(${service})`,
          `the CA offers no ${type} challenge for ${name}`,
        );
      return { authz, challenge, name };
    });
  const answers: ChallengeAnswer[] = [];
  for (const { authz, challenge } of pending)
    answers.push({
      name: authz.identifier.value,
      wildcard: !!authz.wildcard,
      token: challenge.token,
      keyAuthorization: await client.getChallengeKeyAuthorization(challenge),
    });
  await solver.publish(answers);
  for (const { challenge, name } of pending) {
    await client.completeChallenge(challenge);
    try {
      await client.waitForValidStatus(challenge);
    } catch (e) {
      throw new ProviderError(
        `acme(${service})`,
        `the ${type} challenge for ${name} failed: ${(e as Error).message}`,
      );
    }
  }
}
