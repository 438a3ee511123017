/** `tlsa doctor postfix [--postfix-dir DIR] [--json] [--resolver IP[:PORT] | --offline]
 *  [--host MXNAME] [--tlsa-file FILE]`: explain the TLS and DANE mistakes in a Postfix configuration.
 *  Exit 1 when a finding is an error, 0 otherwise, 2 for bad input. */
import { runDoctor } from '../doctor/doctor.js';
import { renderReport } from '../doctor/render.js';
import { InputError } from '../errors.js';
import { out, printJson } from './fail.js';
import type { CliValues } from './options.js';

export async function run(v: CliValues, args: string[]): Promise<number> {
  const [what, ...extra] = args;
  if (what !== 'postfix')
    throw new InputError(
      what
        ? `doctor knows "postfix", not "${what}"`
        : 'doctor needs what to examine: tlsa doctor postfix',
    );
  if (extra.length) throw new InputError(`unexpected argument "${extra[0]}"`);
  let timeoutMs = 5000;
  if (v.timeout !== undefined) {
    timeoutMs = Number(v.timeout) * 1000;
    if (!(timeoutMs > 0))
      throw new InputError(`--timeout must be a number of seconds, got "${v.timeout}"`);
  }
  const report = await runDoctor({
    ...(v['postfix-dir'] !== undefined ? { configDir: v['postfix-dir'] } : {}),
    ...(v.host !== undefined ? { host: v.host } : {}),
    ...(v['tlsa-file'] !== undefined ? { tlsaFile: v['tlsa-file'] } : {}),
    ...(v.resolver !== undefined ? { resolver: v.resolver } : {}),
    ...(v.offline ? { offline: true } : {}),
    timeoutMs,
  });
  if (v.json) {
    // The envelope says ok and exitCode.
    const { ok: _ok, exitCode, ...fields } = report;
    return printJson('doctor', exitCode, fields);
  }
  out(renderReport(report));
  return report.exitCode;
}
