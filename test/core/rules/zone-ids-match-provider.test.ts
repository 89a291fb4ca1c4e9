import { zoneIdsMatchProvider } from "../../../packages/core/src/config/rules/zone-ids-match-provider";
import { lines } from "./check";

test("each provider's own map passes", () => {
  expect(lines(zoneIdsMatchProvider, { cloudflareZoneIds: {} })).toEqual([]);
  expect(lines(zoneIdsMatchProvider, { dnsProvider: "route53", route53ZoneIds: {} })).toEqual([]);
});

test("the other provider's map is refused, even empty", () => {
  expect(lines(zoneIdsMatchProvider, { route53ZoneIds: {} })).toEqual(['route53ZoneIds: does not apply with dnsProvider cloudflare; remove it or set dnsProvider: "route53"']);
  expect(lines(zoneIdsMatchProvider, { dnsProvider: "route53", cloudflareZoneIds: {} })).toEqual(["cloudflareZoneIds: does not apply with dnsProvider route53; remove it"]);
});
