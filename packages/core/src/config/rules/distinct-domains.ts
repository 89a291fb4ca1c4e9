import type { ConfigContext } from "./context";

/** The primary and extra domains are domain names, each listed once. Fills `domain` and `domains`. */
export function distinctDomains(ctx: ConfigContext): void {
  ctx.domain = ctx.domainAt("domain", ctx.input.domain);
  if (ctx.domain !== undefined) ctx.domains.push(ctx.domain);
  ctx.input.extraDomains.forEach((raw, i) => {
    const domain = ctx.domainAt(`extraDomains[${i}]`, raw);
    if (domain === undefined) return;
    if (ctx.domains.includes(domain)) ctx.fail(`extraDomains[${i}]`, `"${raw}" is listed twice (or is the primary domain); remove it`);
    else ctx.domains.push(domain);
  });
}
