import type { ConfigContext } from "./context";

/** What may follow `550 5.2.1` in a refusal: printable ASCII, no blank at either end. */
const REPLY = /^[\x21-\x7e](?:[\x20-\x7e]{0,198}[\x21-\x7e])?$/;

/**
 * A disabled mailbox leaves nothing that must receive mail without a reader: no alias whose
 * every target is disabled (its mail would bounce; an alias with other targets skips the
 * disabled ones), and no postmaster@ or abuse@ (RFC 5321, RFC 2142), postmaster, abuse or
 * dmarcReports that reaches only disabled mailboxes. Each mailbox's disabledReply is text a
 * refusal can carry. Runs once every alias is known; the catch-all's target is checked with
 * the catch-all.
 */
export function disabledMailboxes(ctx: ConfigContext): void {
  ctx.input.mailboxes.forEach((m, i) => {
    if (!REPLY.test(m.disabledReply.trim())) {
      ctx.fail(`mailboxes[${i}].disabledReply`, "must be 1–200 printable ASCII characters (no line breaks or tabs), e.g. \"Alice has left; write to sales@example.com\"");
    }
  });
  const disabled = ctx.mailboxes.filter((m) => !m.enabled);
  if (disabled.length === 0) return;
  const delivering = ctx.delivering();
  const targets = new Map(ctx.aliases.map((a) => [a.address, a.to]));
  const isDisabled = new Set(disabled.map((m) => m.address));
  /** The disabled mailboxes an address reaches, through aliases; read only for addresses that deliver nowhere. */
  const reached = (address: string): string => {
    const seen = new Set<string>();
    const found: string[] = [];
    const walk = (a: string) => {
      if (seen.has(a)) return;
      seen.add(a);
      if (isDisabled.has(a)) found.push(a);
      for (const t of targets.get(a) ?? []) walk(t);
    };
    walk(address);
    return found.join(", ");
  };

  for (const { alias, path } of ctx.explicitAliases) {
    // An alias that reaches no disabled mailbox either (a loop, a missing target) is another rule's.
    if (delivering.has(alias.address) || reached(alias.address) === "") continue;
    ctx.fail(
      `${path}.to`,
      `every target of ${alias.address} is a disabled mailbox (${reached(alias.address)}), so its mail would bounce; add an enabled mailbox to it, or remove the alias`,
    );
  }

  // Without postmaster set, the first mailbox is the postmaster (and abuse and dmarcReports follow it).
  const roles = [
    { field: "postmaster", why: "postmaster@ of every domain must be read (RFC 5321)" },
    { field: "abuse", why: "abuse@ of every domain must be read (RFC 2142)" },
    { field: "dmarcReports", why: "the DMARC aggregate reports would bounce" },
  ] as const;
  for (const { field, why } of roles) {
    const address = ctx[field];
    if (address === "" || delivering.has(address) || reached(address) === "") continue;
    const set = ctx.input[field] !== undefined;
    // A default follows another field (abuse and dmarcReports the postmaster): reported there once.
    if (!set && field !== "postmaster") continue;
    if (set) {
      ctx.fail(field, `"${ctx.input[field]}" reaches only disabled mailboxes (${reached(address)}), but ${why}; name an enabled mailbox or alias`);
    } else {
      const first = disabled.find((m) => m.address === address);
      ctx.fail(
        first ? `mailboxes[${first.index}].enabled` : "postmaster",
        `${address} is the postmaster (the first mailbox, as postmaster is not set) and ${why}; set postmaster to an enabled mailbox or alias, or keep this mailbox enabled`,
      );
    }
  }

  // A mailbox that is itself postmaster@ or abuse@ of a domain, or has such an alias.
  for (const m of disabled) {
    const own = [m.address, ...ctx.aliases.filter((a) => a.origin === "mailbox" && a.to[0] === m.address).map((a) => a.address)];
    const role = own.find((a) => /^(?:postmaster|abuse)@/.test(a));
    if (role !== undefined) {
      ctx.fail(
        `mailboxes[${m.index}].enabled`,
        `${role} must receive mail (RFC 5321, RFC 2142) and is ${role === m.address ? "this mailbox" : "one of its aliases"}; keep it enabled, or make ${role} an alias of an enabled mailbox`,
      );
    }
  }
}
