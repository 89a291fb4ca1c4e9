import { checkPassword, checkPasswordHash } from "../password-policy";
import type { ConfigContext } from "./context";

/**
 * Each mailbox has exactly one of password and passwordHash, and a plain-string value meets
 * the password policy. Secret values are checked by the component once they resolve.
 */
export function mailboxCredentials(ctx: ConfigContext): void {
  const addresses = new Map(ctx.mailboxes.map((m) => [m.index, m.address]));
  ctx.input.mailboxes.forEach((m, i) => {
    const path = `mailboxes[${i}]`;
    const hasPassword = m.password !== undefined && m.password !== null;
    const hasHash = m.passwordHash !== undefined && m.passwordHash !== null;
    if (hasPassword && hasHash) ctx.fail(path, "sets both password and passwordHash; keep one");
    if (!hasPassword && !hasHash) {
      ctx.fail(`${path}.password`, "is required (or passwordHash); set it with `pulumi config set --secret --path 'mailboxes[" + i + "].password'`");
    }
    const address = addresses.get(i);
    if (address !== undefined && typeof m.password === "string") {
      const problem = checkPassword(m.password, address);
      if (problem) ctx.fail(`${path}.password`, problem);
    }
    if (typeof m.passwordHash === "string") {
      const problem = checkPasswordHash(m.passwordHash);
      if (problem) ctx.fail(`${path}.passwordHash`, problem);
    }
  });
}
