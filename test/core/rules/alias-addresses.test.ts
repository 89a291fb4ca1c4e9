import { aliasAddresses } from "../../../packages/core/src/config/rules/alias-addresses";
import { check, lines } from "./check";

test("fills the aliases with their targets and where each was written", () => {
  const { issues, ctx } = check(aliasAddresses, { aliases: [{ address: "Info@example.com", to: ["alice@example.com", "Bob@Example.net"] }] });
  expect(issues).toEqual([]);
  expect(ctx.aliases).toEqual([{ address: "info@example.com", to: ["alice@example.com", "bob@example.net"], origin: "alias" }]);
  expect(ctx.explicitAliases[0].targetPaths.get("bob@example.net")).toBe("aliases[0].to[1]");
});

test("refuses a catch-all, an empty list, a target repeated or the alias itself", () => {
  expect(lines(aliasAddresses, { aliases: [{ address: "@example.com", to: ["alice@example.com"] }] })[0]).toContain('aliases[0].address: "@example.com" is a catch-all');
  expect(lines(aliasAddresses, { aliases: [{ address: "info@example.com", to: [] }] })).toEqual(["aliases[0].to: is empty; list at least one destination address"]);
  expect(lines(aliasAddresses, { aliases: [{ address: "info@example.com", to: ["info@example.com", "alice@example.com", "ALICE@example.com"] }] })).toEqual([
    'aliases[0].to[0]: "info@example.com" forwards the alias to itself; remove it',
    'aliases[0].to[2]: "ALICE@example.com" is listed twice; remove one',
  ]);
});

test("refuses an address outside the hosted domains, or one already received at", () => {
  expect(lines(aliasAddresses, { aliases: [{ address: "info@example.net", to: ["alice@example.com"] }] })).toEqual([
    'aliases[0].address: "info@example.net" is not in a hosted domain (example.com); add its domain to extraDomains',
  ]);
  expect(lines(aliasAddresses, { aliases: [{ address: "alice@example.com", to: ["bob@example.com"] }] })).toEqual([
    'aliases[0].address: "alice@example.com" is already used by mailboxes[0].address; each address may be a mailbox or an alias once',
  ]);
});
