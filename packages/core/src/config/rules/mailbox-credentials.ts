import type { ConfigContext } from "./context";

/**
 * Each mailbox has exactly one of password and passwordHash, and a plain-string value meets
 * the password policy. Secret values are checked by the component once they resolve.
 */
export function mailboxCredentials(ctx: ConfigContext): void {
  const addresses = new Map(ctx.mailboxes.map((m) => [m.index, m.address]));
  ctx.input.mailboxes.forEach((m, i) => ctx.credentialAt(`mailboxes[${i}]`, m, addresses.get(i)));
}
