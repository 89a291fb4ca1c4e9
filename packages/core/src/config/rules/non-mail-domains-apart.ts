import type { ConfigContext } from "./context";

/** Each non-mail domain is a domain that neither receives nor sends mail here, listed once. Fills `nonMailDomains`. */
export function nonMailDomainsApart(ctx: ConfigContext): void {
  ctx.input.nonMailDomains.forEach((raw, i) => {
    const domain = ctx.domainAt(`nonMailDomains[${i}]`, raw);
    if (domain === undefined) return;
    if (ctx.domains.includes(domain) || domain === ctx.hostname) ctx.fail(`nonMailDomains[${i}]`, `"${raw}" receives or sends mail here; remove it from nonMailDomains`);
    else if (ctx.nonMailDomains.includes(domain)) ctx.fail(`nonMailDomains[${i}]`, `"${raw}" is listed twice; remove one`);
    else ctx.nonMailDomains.push(domain);
  });
}
