import { SES_MAX_RECEIPT_RULES } from "@mailstack/core";
import { sesServices } from "../../../packages/core/src/config/rules/ses-services";
import { check, lines, PASSWORD } from "./check";

test("nothing when neither option is on, whatever the region", () => {
  const { issues, ctx } = check(sesServices, { sesRegion: "eu-south-2" });
  expect(issues).toEqual([]);
  expect(ctx.ses).toBeUndefined();
  expect(ctx.mx.map((m) => m.host)).toEqual(["mail.example.com"]);
});

test("fills the settings in the stack's region, or in sesRegion, and puts SES's MX after every other", () => {
  const inStack = check(sesServices, { sesOutbound: true }, { region: "eu-west-1" });
  expect(inStack.issues).toEqual([]);
  expect(inStack.ctx.ses).toEqual({ region: "eu-west-1", outbound: true, inbound: false, mailFromSubdomain: "bounce" });
  expect(inStack.ctx.mx.map((m) => m.host)).toEqual(["mail.example.com"]);

  const elsewhere = check(
    sesServices,
    { sesInbound: true, sesRegion: "us-east-1", sesMailFromSubdomain: "mx-feedback", secondaryMx: [{ host: "backup.example.net", priority: 30 }] },
    { region: "eu-south-2" },
  );
  expect(elsewhere.issues).toEqual([]);
  expect(elsewhere.ctx.ses).toEqual({ region: "us-east-1", outbound: false, inbound: true, mailFromSubdomain: "mx-feedback" });
  expect(elsewhere.ctx.mx).toEqual([
    { host: "mail.example.com", priority: 10 },
    { host: "backup.example.net", priority: 30 },
    { host: "inbound-smtp.us-east-1.amazonaws.com", priority: 40 },
  ]);
});

test("a region is needed, and it must offer what is asked of SES", () => {
  expect(lines(sesServices, { sesOutbound: true })).toEqual(["sesRegion: is needed with sesOutbound or sesInbound when the stack's region is not known; set it, e.g. eu-west-1"]);
  expect(lines(sesServices, { sesInbound: true }, { region: "eu-south-2" })).toEqual([
    "sesInbound: SES does not receive mail in eu-south-2 (the stack's region); set sesRegion to one of us-east-1, us-east-2, us-west-2, ca-central-1, eu-central-1, eu-west-1, eu-west-2, ap-northeast-1, ap-southeast-1, ap-southeast-2, ap-southeast-3",
  ]);
  expect(lines(sesServices, { sesOutbound: true, sesInbound: true, sesRegion: "eu-north-1" })).toEqual([
    expect.stringMatching(/^sesRegion: SES does not receive mail in eu-north-1 \(sesRegion\)/),
  ]);
  expect(lines(sesServices, { sesOutbound: true, sesRegion: "ap-east-2" })).toEqual([
    "sesRegion: SES has no SMTP endpoint in ap-east-2 (sesRegion); set sesRegion to one that has, e.g. eu-west-1 or us-east-1",
  ]);
});

test("the relay refuses forwarding, whose outside From SES would refuse", () => {
  expect(lines(sesServices, { sesOutbound: true, allowExternalForwarding: true }, { region: "eu-west-1" })).toEqual([
    "sesOutbound: cannot carry forwarded mail: SES sends only messages whose From is a verified identity, and a forwarded message keeps its sender's; turn off allowExternalForwarding, or sesOutbound",
  ]);
  // Forwarding without the relay, and the safety net with forwarding, are fine.
  expect(lines(sesServices, { sesInbound: true, allowExternalForwarding: true }, { region: "eu-west-1" })).toEqual([]);
});

test("the safety net refuses what SES cannot list: catch-alls, a directory, more addresses than rules", () => {
  expect(lines(sesServices, { sesInbound: true, catchAll: { "example.com": "alice@example.com" } }, { region: "eu-west-1" })).toEqual([
    "sesInbound: cannot list the addresses of example.com, which has a catch-all: SES would have to accept every address there; remove catchAll.example.com, or sesInbound",
  ]);
  const ldap = { url: "ldaps://ldap.example.com", bindDn: "cn=mail,dc=example,dc=com", bindPassword: PASSWORD, baseDn: "dc=example,dc=com", domains: ["example.com"] };
  expect(lines(sesServices, { sesInbound: true, ldap }, { region: "eu-west-1" })).toEqual([
    "sesInbound: cannot list the directory's users (ldap): SES accepts only addresses written into its rules at deployment; remove ldap, or sesInbound",
  ]);
  // The generated postmaster@ and abuse@ go to alice, so she and they are three addresses.
  const many = (n: number) => Array.from({ length: n }, (_, i) => ({ address: `user${i}@example.com`, password: PASSWORD }));
  expect(lines(sesServices, { sesInbound: true, mailboxes: many(SES_MAX_RECEIPT_RULES - 2) }, { region: "eu-west-1" })).toEqual([]);
  expect(lines(sesServices, { sesInbound: true, mailboxes: many(SES_MAX_RECEIPT_RULES - 1) }, { region: "eu-west-1" })).toEqual([
    `sesInbound: needs one SES receipt rule per receiving address, and ${SES_MAX_RECEIPT_RULES + 1} are more than the ${SES_MAX_RECEIPT_RULES} a rule set holds; turn sesInbound off`,
  ]);
});

test("the MAIL FROM label may not name what the stack already publishes", () => {
  expect(lines(sesServices, { sesOutbound: true, sesMailFromSubdomain: "mail" }, { region: "eu-west-1" })).toEqual([
    'sesMailFromSubdomain: "mail" would make mail.example.com the MAIL FROM domain, a name the stack already uses; choose another label, e.g. bounce',
  ]);
  expect(lines(sesServices, { sesOutbound: true, sesMailFromSubdomain: "mta-sts" }, { region: "eu-west-1" })).toEqual([expect.stringMatching(/^sesMailFromSubdomain: "mta-sts" would make/)]);
  // Only the relay publishes MAIL FROM domains.
  expect(lines(sesServices, { sesInbound: true, sesMailFromSubdomain: "mail" }, { region: "eu-west-1" })).toEqual([]);
});
