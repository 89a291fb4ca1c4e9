import { hostnameWithinDomains } from "../../../packages/core/src/config/rules/hostname-within-domains";
import { check, lines } from "./check";

test("defaults to mail.<domain>", () => {
  expect(check(hostnameWithinDomains).ctx.hostname).toBe("mail.example.com");
});

test("takes a name within any mail domain, normalised", () => {
  const { issues, ctx } = check(hostnameWithinDomains, { extraDomains: ["example.org"], hostname: "MX.Example.org" });
  expect([issues, ctx.hostname]).toEqual([[], "mx.example.org"]);
});

test("refuses a mail domain itself, and a name outside them", () => {
  expect(lines(hostnameWithinDomains, { hostname: "example.com" })).toEqual([
    'hostname: "example.com" is a mail domain itself; use a name below it such as mail.example.com, leaving the apex for your website',
  ]);
  expect(lines(hostnameWithinDomains, { hostname: "mail.example.net" })).toEqual([
    'hostname: "mail.example.net" is not within any mail domain (example.com), so its A record cannot be published; use e.g. mail.example.com',
  ]);
});
