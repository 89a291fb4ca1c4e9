import type { ConfigContext } from "./context";

/**
 * postmaster, abuse and dmarcReports are hosted addresses that deliver: a mailbox, an alias, or
 * a role address generated before the field is used. Fills them, with their defaults: the
 * first mailbox, then the postmaster.
 */
export function roleAddressesResolve(ctx: ConfigContext): void {
  const mailboxes = new Set(ctx.mailboxes.map((m) => m.address));
  const aliases = new Set(ctx.aliases.map((a) => a.address));
  // `generated`: local parts whose aliases exist on every domain by the time the field is used.
  const recipient = (field: "postmaster" | "abuse" | "dmarcReports", fallback: string | undefined, generated: string[] = []) => {
    const raw = ctx.input[field];
    if (raw === undefined) return fallback;
    const address = ctx.addressAt(field, raw);
    if (address === undefined) return fallback;
    if (!ctx.hosted(address)) {
      ctx.fail(field, `"${raw}" is outside the hosted domains; use a mailbox or alias on ${ctx.domains.join(", ")}`);
    } else if (!mailboxes.has(address) && !aliases.has(address) && !generated.includes(address.slice(0, address.indexOf("@")))) {
      ctx.fail(field, `"${raw}" is neither a mailbox nor an alias; add it to mailboxes or aliases`);
    }
    return address;
  };
  ctx.postmaster = recipient("postmaster", ctx.mailboxes[0]?.address) ?? "";
  ctx.abuse = recipient("abuse", ctx.postmaster, ["postmaster"]) ?? "";
  ctx.dmarcReports = recipient("dmarcReports", ctx.postmaster, ["postmaster", "abuse"]) ?? "";
}
