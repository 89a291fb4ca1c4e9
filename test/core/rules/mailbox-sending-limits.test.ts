import { mailboxSendingLimits } from "../../../packages/core/src/config/rules/mailbox-sending-limits";
import { lines, PASSWORD } from "./check";

const limits = (own: Record<string, unknown> | undefined, stack?: Record<string, number>) => ({
  ...(stack && { sendingLimits: stack }),
  mailboxes: [{ address: "alice@example.com", password: PASSWORD }, { address: "bob@example.com", password: PASSWORD, sendingLimits: own as never }],
});

test("a mailbox's own hourly limits, or none, pass", () => {
  for (const own of [undefined, {}, { messagesPerHour: 500 }, { recipientsPerHour: 1 }, { messagesPerHour: 2, recipientsPerHour: 20 }]) {
    expect([own, lines(mailboxSendingLimits, limits(own))]).toEqual([own, []]);
  }
});

test("refuses recipientsPerMessage per mailbox, saying why and where to set it", () => {
  expect(lines(mailboxSendingLimits, limits({ messagesPerHour: 500, recipientsPerMessage: 500 }, { recipientsPerMessage: 50 }))).toEqual([
    "mailboxes[1].sendingLimits.recipientsPerMessage: cannot differ per mailbox: it is Postfix's smtpd_recipient_limit, one setting for the whole host; remove it here and set sendingLimits.recipientsPerMessage (now 50) instead",
  ]);
  // Even the stack's own value: the field has no place here.
  expect(lines(mailboxSendingLimits, limits({ recipientsPerMessage: 100 }))).toHaveLength(1);
});
