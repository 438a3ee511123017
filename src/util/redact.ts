/** Secrets read from env or files are registered here so that no message can print them. */
const secrets = new Set<string>();

export function registerSecret(value: string): void {
  if (value.length >= 4) secrets.add(value);
}

export function redact(text: string): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('***');
  return out;
}
