import { PRIMARY_MX_PRIORITY } from "../model";
import type { ConfigContext } from "./context";

/**
 * Each secondary MX is another host name, preferred after this host. Fills `mx`: this host,
 * then the others with their priority, by default 10 apart in list order.
 */
export function secondaryMxAfterHost(ctx: ConfigContext): void {
  ctx.mx.push({ host: ctx.hostname, priority: PRIMARY_MX_PRIORITY });
  (ctx.input.secondaryMx ?? []).forEach((entry, i) => {
    const host = ctx.domainAt(`secondaryMx[${i}].host`, entry.host);
    const priority = entry.priority ?? PRIMARY_MX_PRIORITY + 10 * (i + 1);
    if (entry.priority !== undefined && entry.priority <= PRIMARY_MX_PRIORITY) {
      ctx.fail(`secondaryMx[${i}].priority`, `${entry.priority} would put it before this host (${PRIMARY_MX_PRIORITY}); use a number above ${PRIMARY_MX_PRIORITY}`);
    }
    if (host === undefined) return;
    if (ctx.mx.some((m) => m.host === host)) ctx.fail(`secondaryMx[${i}].host`, `"${entry.host}" is already an MX host; remove it`);
    else ctx.mx.push({ host, priority });
  });
}
