import { APP_PASSWORD_SERVICES } from "../fields";
import { quotaMiB } from "../quota";
import { type ConfigContext, givenAsHash } from "./context";

/**
 * There is a mailbox; each mailbox address and each of its aliases is an address in a hosted
 * domain that nothing else receives at. Fills `mailboxes` (with each one's hourly sending
 * limits: its own, else the stack's) and their aliases in `aliases`.
 */
export function mailboxAddresses(ctx: ConfigContext): void {
  const { input } = ctx;
  if (input.mailboxes.length === 0) {
    ctx.fail("mailboxes", "is empty; add at least one mailbox, e.g. { address: you@" + (ctx.domain ?? "example.com") + " }");
  }
  input.mailboxes.forEach((m, i) => {
    const path = `mailboxes[${i}]`;
    const address = ctx.addressAt(`${path}.address`, m.address);
    if (address === undefined) return;
    if (!ctx.hosted(address)) {
      ctx.fail(`${path}.address`, `"${m.address}" is not in a hosted domain (${ctx.domains.join(", ")}); add its domain to extraDomains`);
    }
    // A mailbox's aliases are claimed right after it, so a later mailbox at one of them is the duplicate.
    if (!ctx.claim(address, `${path}.address`)) return;
    const quota = quotaMiB(m.quota);
    const own = m.sendingLimits ?? {};
    ctx.mailboxes.push({
      address,
      credential: givenAsHash(m) ? "passwordHash" : "password",
      quotaMiB: quota === "invalid" ? undefined : quota,
      enabled: m.enabled,
      disabledReply: m.disabledReply.trim(),
      sendingLimits: {
        messagesPerHour: own.messagesPerHour ?? input.sendingLimits.messagesPerHour,
        recipientsPerHour: own.recipientsPerHour ?? input.sendingLimits.recipientsPerHour,
      },
      appPasswords: m.appPasswords.map((a) => ({
        name: a.name,
        credential: givenAsHash(a) ? "passwordHash" : "password",
        services: [...new Set(a.services ?? APP_PASSWORD_SERVICES.filter((s) => s !== "pop3" || input.pop3))],
      })),
      requireAppPasswords: m.requireAppPasswords,
      index: i,
    });
    m.aliases.forEach((raw, j) => {
      const aliasPath = `${path}.aliases[${j}]`;
      const alias = ctx.addressAt(aliasPath, raw);
      if (alias === undefined) return;
      if (!ctx.hosted(alias)) {
        ctx.fail(aliasPath, `"${raw}" is not in a hosted domain (${ctx.domains.join(", ")}); add its domain to extraDomains`);
        return;
      }
      if (ctx.claim(alias, aliasPath)) ctx.aliases.push({ address: alias, to: [address], origin: "mailbox" });
    });
  });
}
