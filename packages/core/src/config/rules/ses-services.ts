import { SES_MAX_RECEIPT_RULES, SES_RECEIVING_REGIONS, SES_SMTP_REGIONS, sesInboundMx } from "../../ses";
import type { ConfigContext } from "./context";

/**
 * SES, when sesOutbound or sesInbound is on: its region (sesRegion, else the stack's) offers
 * what is asked of it; the relay does not carry forwarded mail, which SES would refuse for its
 * outside From; the safety net can name every address that receives. Fills `ses`, and appends
 * SES's inbound MX after every other MX host.
 */
export function sesServices(ctx: ConfigContext): void {
  const { sesOutbound: outbound, sesInbound: inbound } = ctx.input;
  if (!outbound && !inbound) return;
  const region = ctx.input.sesRegion ?? ctx.region;
  const where = ctx.input.sesRegion === undefined ? "the stack's region" : "sesRegion";
  let ok = true;
  if (region === undefined) {
    ctx.fail("sesRegion", "is needed with sesOutbound or sesInbound when the stack's region is not known; set it, e.g. eu-west-1");
    return;
  }
  if (outbound && !(SES_SMTP_REGIONS as readonly string[]).includes(region)) {
    ok = false;
    ctx.fail(ctx.input.sesRegion === undefined ? "sesOutbound" : "sesRegion", `SES has no SMTP endpoint in ${region} (${where}); set sesRegion to one that has, e.g. eu-west-1 or us-east-1`);
  }
  if (inbound && !(SES_RECEIVING_REGIONS as readonly string[]).includes(region)) {
    ok = false;
    ctx.fail(ctx.input.sesRegion === undefined ? "sesInbound" : "sesRegion", `SES does not receive mail in ${region} (${where}); set sesRegion to one of ${SES_RECEIVING_REGIONS.join(", ")}`);
  }
  if (outbound && ctx.input.allowExternalForwarding) {
    ok = false;
    ctx.fail(
      "sesOutbound",
      "cannot carry forwarded mail: SES sends only messages whose From is a verified identity, and a forwarded message keeps its sender's; turn off allowExternalForwarding, or sesOutbound",
    );
  }
  if (inbound) {
    for (const { domain } of ctx.catchAll) {
      ok = false;
      ctx.fail("sesInbound", `cannot list the addresses of ${domain}, which has a catch-all: SES would have to accept every address there; remove catchAll.${domain}, or sesInbound`);
    }
    if (ctx.ldap !== undefined) {
      ok = false;
      ctx.fail("sesInbound", "cannot list the directory's users (ldap): SES accepts only addresses written into its rules at deployment; remove ldap, or sesInbound");
    }
    const receiving = [...ctx.delivering()].filter((address) => ctx.hosted(address)).length;
    if (receiving > SES_MAX_RECEIPT_RULES) {
      ok = false;
      ctx.fail("sesInbound", `needs one SES receipt rule per receiving address, and ${receiving} are more than the ${SES_MAX_RECEIPT_RULES} a rule set holds; turn sesInbound off`);
    }
  }
  const label = ctx.input.sesMailFromSubdomain;
  for (const domain of outbound ? ctx.domains : []) {
    const name = `${label}.${domain}`;
    if (name === ctx.hostname || ["mta-sts", "autoconfig", "autodiscover"].includes(label)) {
      ok = false;
      ctx.fail("sesMailFromSubdomain", `"${label}" would make ${name} the MAIL FROM domain, a name the stack already uses; choose another label, e.g. bounce`);
      break;
    }
  }
  if (!ok) return;
  ctx.ses = { region, outbound, inbound, mailFromSubdomain: ctx.input.sesMailFromSubdomain };
  if (inbound) ctx.mx.push({ host: sesInboundMx(region), priority: Math.max(...ctx.mx.map((m) => m.priority)) + 10 });
}
