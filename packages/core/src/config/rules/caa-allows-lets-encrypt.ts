import type { ConfigContext } from "./context";

/**
 * A CAA record, if any, lets Let's Encrypt issue, or the host's certificate could not renew.
 * Fills `caaIssuers`, normalised and without repeats.
 */
export function caaAllowsLetsEncrypt(ctx: ConfigContext): void {
  ctx.input.caaIssuers.forEach((raw, i) => {
    const domain = ctx.domainAt(`caaIssuers[${i}]`, raw);
    if (domain !== undefined && !ctx.caaIssuers.includes(domain)) ctx.caaIssuers.push(domain);
  });
  if (ctx.caaIssuers.length > 0 && !ctx.caaIssuers.includes("letsencrypt.org")) {
    ctx.fail("caaIssuers", `leaves out letsencrypt.org, the CA the host's certificate comes from, so renewals would fail; add it or set [] to publish no CAA record`);
  }
}
