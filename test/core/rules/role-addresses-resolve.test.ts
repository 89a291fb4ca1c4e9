import { roleAddressesResolve } from "../../../packages/core/src/config/rules/role-addresses-resolve";
import { check, lines, PASSWORD } from "./check";

test("postmaster defaults to the first mailbox; abuse and reports to the postmaster", () => {
  const { ctx } = check(roleAddressesResolve);
  expect([ctx.postmaster, ctx.abuse, ctx.dmarcReports]).toEqual(["alice@example.com", "alice@example.com", "alice@example.com"]);
});

test("takes hosted mailboxes and aliases, and the role addresses generated before each field", () => {
  const { issues, ctx } = check(roleAddressesResolve, {
    mailboxes: [{ address: "alice@example.com", password: PASSWORD }, { address: "bob@example.com", password: PASSWORD }],
    aliases: [{ address: "ops@example.com", to: ["bob@example.com"] }],
    postmaster: "Ops@example.com",
    abuse: "postmaster@example.com",
    dmarcReports: "abuse@example.com",
  });
  expect(issues).toEqual([]);
  expect([ctx.postmaster, ctx.abuse, ctx.dmarcReports]).toEqual(["ops@example.com", "postmaster@example.com", "abuse@example.com"]);
});

test("refuses addresses elsewhere, and hosted ones that deliver nowhere", () => {
  expect(lines(roleAddressesResolve, { postmaster: "alice@example.net", abuse: "abuse@example.com", dmarcReports: "reports@example.com" })).toEqual([
    'postmaster: "alice@example.net" is outside the hosted domains; use a mailbox or alias on example.com',
    'abuse: "abuse@example.com" is neither a mailbox nor an alias; add it to mailboxes or aliases',
    'dmarcReports: "reports@example.com" is neither a mailbox nor an alias; add it to mailboxes or aliases',
  ]);
});
