import * as ipaddr from "ipaddr.js";
import type { ConfigContext } from "./context";

/**
 * Each admin CIDR is a network (no host bits) narrower than the whole internet. Fills
 * `adminCidrs`, normalised and without repeats.
 */
export function adminCidrsAreNetworks(ctx: ConfigContext): void {
  ctx.input.adminCidrs.forEach((raw, i) => {
    const cidr = network(ctx, `adminCidrs[${i}]`, raw);
    if (cidr && !ctx.adminCidrs.includes(cidr)) ctx.adminCidrs.push(cidr);
  });
}

function network(ctx: ConfigContext, path: string, raw: string): string | undefined {
  let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    parsed = ipaddr.parseCIDR(raw.trim());
  } catch {
    ctx.fail(path, `"${raw}" is not a CIDR block; write e.g. 203.0.113.7/32 or 2001:db8::/48`);
    return undefined;
  }
  const [address, prefix] = parsed;
  if (prefix === 0) {
    ctx.fail(path, `"${raw}" opens SSH to the whole internet; list your own address (e.g. 203.0.113.7/32) or use SSM Session Manager`);
    return undefined;
  }
  const network = address.kind() === "ipv4" ? ipaddr.IPv4.networkAddressFromCIDR(raw.trim()) : ipaddr.IPv6.networkAddressFromCIDR(raw.trim());
  if (network.toString() !== address.toString()) {
    ctx.fail(path, `"${raw}" has host bits set; did you mean ${network.toString()}/${prefix}?`);
    return undefined;
  }
  return `${address.toString()}/${prefix}`;
}
