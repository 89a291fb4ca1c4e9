import { adminCidrsAreNetworks } from "../../../packages/core/src/config/rules/admin-cidrs-are-networks";
import { check, lines } from "./check";

test("fills the networks, normalised and once each", () => {
  const { issues, ctx } = check(adminCidrsAreNetworks, { adminCidrs: ["203.0.113.0/24", " 2001:DB8::/48", "203.0.113.0/24"] });
  expect([issues, ctx.adminCidrs]).toEqual([[], ["203.0.113.0/24", "2001:db8::/48"]]);
});

test("refuses non-CIDRs, the whole internet and host bits", () => {
  expect(lines(adminCidrsAreNetworks, { adminCidrs: ["my laptop", "::/0", "10.1.2.3/8"] })).toEqual([
    'adminCidrs[0]: "my laptop" is not a CIDR block; write e.g. 203.0.113.7/32 or 2001:db8::/48',
    'adminCidrs[1]: "::/0" opens SSH to the whole internet; list your own address (e.g. 203.0.113.7/32) or use SSM Session Manager',
    'adminCidrs[2]: "10.1.2.3/8" has host bits set; did you mean 10.0.0.0/8?',
  ]);
});
