import { zoneIdsForManagedDomains } from "../../../packages/core/src/config/rules/zone-ids-for-managed-domains";
import { lines } from "./check";

const ID = "0123456789abcdef0123456789abcdef";

test("mail domains and non-mail domains may have zone ids", () => {
  expect(lines(zoneIdsForManagedDomains, { nonMailDomains: ["example.net"], cloudflareZoneIds: { "Example.com": ID, "example.net": ID } })).toEqual([]);
});

test("other domains are refused, in either provider's map", () => {
  expect(lines(zoneIdsForManagedDomains, { dnsProvider: "route53", route53ZoneIds: { "example.org": "Z1" } })).toEqual([
    'route53ZoneIds.example.org: "example.org" is neither a mail domain (example.com) nor in nonMailDomains; remove it or add it to extraDomains',
  ]);
});
