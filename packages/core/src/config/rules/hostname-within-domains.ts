import { isWithin } from "../../names";
import type { ConfigContext } from "./context";

/**
 * The host name lies below a mail domain, so its A record can be published there, and is not
 * a mail domain itself, which leaves the apex for a website. Fills `hostname`.
 */
export function hostnameWithinDomains(ctx: ConfigContext): void {
  const { input, domains, domain } = ctx;
  ctx.hostname = domain ? `mail.${domain}` : "";
  if (input.hostname === undefined) return;
  const hostname = ctx.domainAt("hostname", input.hostname);
  if (hostname === undefined) return;
  ctx.hostname = hostname;
  if (domains.includes(hostname)) {
    ctx.fail("hostname", `"${input.hostname}" is a mail domain itself; use a name below it such as mail.${hostname}, leaving the apex for your website`);
  } else if (!domains.some((d) => isWithin(hostname, d))) {
    ctx.fail("hostname", `"${input.hostname}" is not within any mail domain (${domains.join(", ")}), so its A record cannot be published; use e.g. mail.${domain}`);
  }
}
