import type { ConfigContext } from "./context";

/**
 * A catch-all is one per hosted domain, and delivers here: its target is a mailbox or alias
 * of the hosted domains (never outside, where it would forward every guessed address's
 * spam) that reaches an enabled mailbox. Exact addresses win over it in Postfix's lookup, so
 * it shadows nothing. Fills `catchAll`.
 */
export function catchAllPerDomain(ctx: ConfigContext): void {
  const entries = Object.entries(ctx.input.catchAll ?? {});
  if (entries.length === 0) return;
  const mailboxes = new Set(ctx.mailboxes.map((m) => m.address));
  const aliases = new Set(ctx.aliases.map((a) => a.address));
  const delivering = ctx.delivering();
  const seen = new Map<string, string>();
  for (const [raw, rawTarget] of entries) {
    const path = `catchAll.${raw}`;
    const domain = ctx.domainAt(path, raw);
    if (domain === undefined) continue;
    if (!ctx.domains.includes(domain)) {
      ctx.fail(path, `"${raw}" is not a hosted domain (${ctx.domains.join(", ")}); a catch-all takes the unknown addresses of a domain this server receives for: add it to extraDomains or remove the entry`);
      continue;
    }
    const earlier = seen.get(domain);
    if (earlier !== undefined) {
      ctx.fail(path, `is ${domain} again, as catchAll.${earlier} is; a domain has one catch-all: keep one entry`);
      continue;
    }
    seen.set(domain, raw);
    if (rawTarget.trim().startsWith("@")) {
      ctx.fail(path, `"${rawTarget}" is a domain; a catch-all delivers to one mailbox or alias, e.g. postmaster@${domain}`);
      continue;
    }
    const target = ctx.addressAt(path, rawTarget);
    if (target === undefined) continue;
    if (!ctx.hosted(target)) {
      ctx.fail(path, `"${rawTarget}" is outside the hosted domains; a catch-all delivers here only (forwarded, it would pass on the spam of every guessed address): name a mailbox or alias`);
    } else if (!mailboxes.has(target) && !aliases.has(target)) {
      ctx.fail(path, `"${rawTarget}" is neither a mailbox nor an alias here; name one, or add it`);
    } else if (!delivering.has(target)) {
      ctx.fail(path, `"${rawTarget}" reaches only disabled mailboxes; name an enabled mailbox or alias, or remove the catch-all`);
    } else {
      ctx.catchAll.push({ domain, to: target });
    }
  }
}
