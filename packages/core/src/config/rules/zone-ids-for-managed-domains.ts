import type { ConfigContext } from "./context";

/** Zone ids are given only for zones the stack writes into: mail domains and non-mail domains. */
export function zoneIdsForManagedDomains(ctx: ConfigContext): void {
  for (const field of ["cloudflareZoneIds", "route53ZoneIds"] as const) {
    for (const raw of Object.keys(ctx.input[field] ?? {})) {
      const domain = ctx.domainAt(`${field}.${raw}`, raw);
      if (domain !== undefined && !ctx.domains.includes(domain) && !ctx.nonMailDomains.includes(domain)) {
        ctx.fail(`${field}.${raw}`, `"${raw}" is neither a mail domain (${ctx.domains.join(", ")}) nor in nonMailDomains; remove it or add it to extraDomains`);
      }
    }
  }
}
