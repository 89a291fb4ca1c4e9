import type { ConfigContext } from "./context";

/** Only the chosen DNS provider's zone ids are given; the other provider's would be ignored. */
export function zoneIdsMatchProvider(ctx: ConfigContext): void {
  const provider = ctx.input.dnsProvider;
  const other = provider === "cloudflare" ? "route53ZoneIds" : "cloudflareZoneIds";
  if (ctx.input[other] !== undefined) {
    ctx.fail(other, `does not apply with dnsProvider ${provider}; remove it${provider === "cloudflare" ? ' or set dnsProvider: "route53"' : ""}`);
  }
}
