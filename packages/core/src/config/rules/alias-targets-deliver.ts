import type { ConfigContext } from "./context";

/**
 * Every alias target in a hosted domain is a mailbox, an alias or a generated postmaster@ or
 * abuse@, so mail to the alias never bounces here; targets elsewhere need
 * allowExternalForwarding.
 */
export function aliasTargetsDeliver(ctx: ConfigContext): void {
  const mailboxes = new Set(ctx.mailboxes.map((m) => m.address));
  const aliases = new Set(ctx.aliases.map((a) => a.address));
  for (const { alias, targetPaths } of ctx.explicitAliases) {
    for (const target of alias.to) {
      const path = targetPaths.get(target) ?? "aliases";
      if (ctx.hosted(target)) {
        if (!mailboxes.has(target) && !aliases.has(target) && !isGeneratedLocal(target)) {
          ctx.fail(path, `"${target}" is neither a mailbox nor an alias here, so mail to ${alias.address} would bounce; add it or fix the spelling`);
        }
      } else if (!ctx.input.allowExternalForwarding) {
        ctx.fail(path, `"${target}" is outside the hosted domains; set allowExternalForwarding: true to forward mail off this server`);
      }
    }
  }
}

function isGeneratedLocal(address: string): boolean {
  const local = address.slice(0, address.indexOf("@"));
  return local === "postmaster" || local === "abuse";
}
