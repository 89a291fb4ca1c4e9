import type { ConfigContext } from "./context";

/**
 * Verification records go on domains the stack manages, each value one printable TXT
 * string. Fills `verificationRecords`, in input order.
 */
export function verificationRecordsOnManagedDomains(ctx: ConfigContext): void {
  for (const [raw, values] of Object.entries(ctx.input.verificationRecords ?? {})) {
    const domain = ctx.domainAt(`verificationRecords.${raw}`, raw);
    if (domain !== undefined && !ctx.domains.includes(domain) && !ctx.nonMailDomains.includes(domain)) {
      ctx.fail(`verificationRecords.${raw}`, `"${raw}" is neither a mail domain nor in nonMailDomains; verification records go on domains the stack manages`);
    }
    values.forEach((value, i) => {
      if (!/^[\x21-\x7e][\x20-\x7e]{0,253}[\x21-\x7e]$/.test(value)) {
        ctx.fail(`verificationRecords.${raw}[${i}]`, "must be 2–255 printable ASCII characters, e.g. google-site-verification=… as the postmaster tool shows it");
      } else if (domain !== undefined) ctx.verificationRecords.push({ domain, value });
    });
  }
}
