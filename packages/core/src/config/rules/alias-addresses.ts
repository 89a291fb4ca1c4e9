import type { Alias } from "../model";
import type { ConfigContext } from "./context";

/**
 * Each alias is one address in a hosted domain (no catch-all: that is `catchAll`) that nothing else receives at,
 * with a non-empty list of distinct targets other than itself. Fills `aliases` and
 * `explicitAliases`.
 */
export function aliasAddresses(ctx: ConfigContext): void {
  (ctx.input.aliases ?? []).forEach((a, i) => {
    const path = `aliases[${i}]`;
    if (a.address.trim().startsWith("@")) {
      ctx.fail(
        `${path}.address`,
        `"${a.address}" is a catch-all, which collects spam for every guessed name; list the addresses you need, or set catchAll: { "${a.address.trim().slice(1)}": <mailbox or alias> } to take that on`,
      );
      return;
    }
    const address = ctx.addressAt(`${path}.address`, a.address);
    if (a.to.length === 0) ctx.fail(`${path}.to`, "is empty; list at least one destination address");
    const to: string[] = [];
    const targetPaths = new Map<string, string>();
    a.to.forEach((raw, j) => {
      const target = ctx.addressAt(`${path}.to[${j}]`, raw);
      if (target === undefined) return;
      if (target === address) ctx.fail(`${path}.to[${j}]`, `"${raw}" forwards the alias to itself; remove it`);
      else if (to.includes(target)) ctx.fail(`${path}.to[${j}]`, `"${raw}" is listed twice; remove one`);
      else {
        to.push(target);
        targetPaths.set(target, `${path}.to[${j}]`);
      }
    });
    if (address === undefined) return;
    if (!ctx.hosted(address)) {
      ctx.fail(`${path}.address`, `"${a.address}" is not in a hosted domain (${ctx.domains.join(", ")}); add its domain to extraDomains`);
      return;
    }
    if (!ctx.claim(address, `${path}.address`)) return;
    const alias: Alias = { address, to, origin: "alias" };
    ctx.aliases.push(alias);
    ctx.explicitAliases.push({ alias, path, targetPaths });
  });
}
