import type { ConfigContext } from "./context";

/**
 * postmaster@ (RFC 5321) and abuse@ (RFC 2142) of every domain deliver to the postmaster and
 * abuse addresses, unless the user defined that address. Adds them to `aliases`; reports nothing.
 */
export function generatedRoleAliases(ctx: ConfigContext): void {
  for (const domain of ctx.domains) {
    for (const [local, target] of [["postmaster", ctx.postmaster], ["abuse", ctx.abuse]] as const) {
      const address = `${local}@${domain}`;
      if (!ctx.owners.has(address) && target !== "" && target !== address) {
        ctx.owners.set(address, "generated");
        ctx.aliases.push({ address, to: [target], origin: "generated" });
      }
    }
  }
}
