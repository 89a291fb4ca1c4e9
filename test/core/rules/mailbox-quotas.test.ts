import { mailboxQuotas } from "../../../packages/core/src/config/rules/mailbox-quotas";
import { lines, PASSWORD } from "./check";

const quota = (value?: string) => ({ mailboxes: [{ address: "alice@example.com", password: PASSWORD, quota: value }] });

test("sizes, unlimited and the default pass", () => {
  for (const value of [undefined, "500M", "1.5G", "5GiB", "1T", "unlimited"]) expect([value, lines(mailboxQuotas, quota(value))]).toEqual([value, []]);
});

test("refuses what is not a size of at least 1 MiB", () => {
  for (const value of ["5 gallons", "0M", "500K"]) {
    expect(lines(mailboxQuotas, quota(value))).toEqual([`mailboxes[0].quota: "${value}" is not a size; write e.g. 500M, 5G, 1T or unlimited`]);
  }
});
