import { nonMailDomainsApart } from "../../../packages/core/src/config/rules/non-mail-domains-apart";
import { check, lines } from "./check";

test("fills other domains and subdomains, normalised", () => {
  expect(check(nonMailDomainsApart, { nonMailDomains: ["Example.net", "www.example.com"] }).ctx.nonMailDomains).toEqual(["example.net", "www.example.com"]);
});

test("refuses a mail domain, the host name and repeats", () => {
  expect(lines(nonMailDomainsApart, { nonMailDomains: ["example.com", "mail.example.com", "example.net", "EXAMPLE.net"] })).toEqual([
    'nonMailDomains[0]: "example.com" receives or sends mail here; remove it from nonMailDomains',
    'nonMailDomains[1]: "mail.example.com" receives or sends mail here; remove it from nonMailDomains',
    'nonMailDomains[3]: "EXAMPLE.net" is listed twice; remove one',
  ]);
});
