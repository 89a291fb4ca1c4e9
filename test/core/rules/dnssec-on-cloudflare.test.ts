import { dnssecOnCloudflare } from "../../../packages/core/src/config/rules/dnssec-on-cloudflare";
import { lines } from "./check";

test("DNSSEC with Cloudflare, or off with Route 53, passes", () => {
  expect(lines(dnssecOnCloudflare, { dnssec: true })).toEqual([]);
  expect(lines(dnssecOnCloudflare, { dnsProvider: "route53" })).toEqual([]);
});

test("DNSSEC with Route 53 is refused", () => {
  expect(lines(dnssecOnCloudflare, { dnsProvider: "route53", dnssec: true })[0]).toMatch(/^dnssec: is only managed on Cloudflare; .*enable DNSSEC signing in Route 53 yourself/);
});
