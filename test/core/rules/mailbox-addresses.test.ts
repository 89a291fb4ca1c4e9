import { mailboxAddresses } from "../../../packages/core/src/config/rules/mailbox-addresses";
import { check, lines, PASSWORD } from "./check";

test("fills the mailboxes and their aliases, normalised", () => {
  const { issues, ctx } = check(mailboxAddresses, {
    mailboxes: [
      { address: "Alice@Example.com", password: PASSWORD, quota: "1G", aliases: ["A@example.com"] },
      { address: "bob@example.com", passwordHash: "x", quota: "unlimited", sendingLimits: { messagesPerHour: 500 } },
    ],
  });
  expect(issues).toEqual([]);
  expect(ctx.mailboxes).toEqual([
    { address: "alice@example.com", credential: "password", quotaMiB: 1024, enabled: true, disabledReply: "Mailbox disabled, not accepting messages", sendingLimits: { messagesPerHour: 100, recipientsPerHour: 300 }, appPasswords: [], requireAppPasswords: false, index: 0 },
    // A limit of its own replaces the stack's; the one it leaves out keeps the stack's.
    { address: "bob@example.com", credential: "passwordHash", quotaMiB: undefined, enabled: true, disabledReply: "Mailbox disabled, not accepting messages", sendingLimits: { messagesPerHour: 500, recipientsPerHour: 300 }, appPasswords: [], requireAppPasswords: false, index: 1 },
  ]);
  expect(ctx.aliases).toEqual([{ address: "a@example.com", to: ["alice@example.com"], origin: "mailbox" }]);
  expect(ctx.owners.get("a@example.com")).toBe("mailboxes[0].aliases[0]");
});

test("refuses an empty list", () => {
  expect(lines(mailboxAddresses, { mailboxes: [] })).toEqual(["mailboxes: is empty; add at least one mailbox, e.g. { address: you@example.com }"]);
});

test("refuses addresses outside the hosted domains", () => {
  expect(lines(mailboxAddresses, { mailboxes: [{ address: "bob@example.net", password: PASSWORD, aliases: ["b@example.org"] }] })).toEqual([
    'mailboxes[0].address: "bob@example.net" is not in a hosted domain (example.com); add its domain to extraDomains',
    'mailboxes[0].aliases[0]: "b@example.org" is not in a hosted domain (example.com); add its domain to extraDomains',
  ]);
});

test("a mailbox's aliases are claimed before the next mailbox", () => {
  const mailboxes = [
    { address: "alice@example.com", password: PASSWORD, aliases: ["bob@example.com"] },
    { address: "bob@example.com", password: PASSWORD },
  ];
  expect(lines(mailboxAddresses, { mailboxes })).toEqual([
    'mailboxes[1].address: "bob@example.com" is already used by mailboxes[0].aliases[0]; each address may be a mailbox or an alias once',
  ]);
});
