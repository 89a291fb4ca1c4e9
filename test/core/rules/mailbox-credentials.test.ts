import { mailboxCredentials } from "../../../packages/core/src/config/rules/mailbox-credentials";
import { SAMPLE_HASH } from "../../support/fixtures";
import { lines, PASSWORD } from "./check";

const mailbox = (fields: object) => ({ mailboxes: [{ address: "alice@example.com", ...fields }] });

test("one good password or hash passes; a secret not yet known is left to the component", () => {
  expect(lines(mailboxCredentials, mailbox({ password: PASSWORD }))).toEqual([]);
  expect(lines(mailboxCredentials, mailbox({ passwordHash: SAMPLE_HASH }))).toEqual([]);
  expect(lines(mailboxCredentials, mailbox({ password: { secret: "output" } }))).toEqual([]);
});

test("needs exactly one of password and passwordHash", () => {
  expect(lines(mailboxCredentials, mailbox({ password: PASSWORD, passwordHash: SAMPLE_HASH }))).toEqual(["mailboxes[0]: sets both password and passwordHash; keep one"]);
  expect(lines(mailboxCredentials, mailbox({ password: null }))).toEqual([
    "mailboxes[0].password: is required (or passwordHash); set it with `pulumi config set --secret --path 'mailboxes[0].password'`",
  ]);
});

test("applies the password policy to plain values, even of a mailbox refused elsewhere", () => {
  expect(lines(mailboxCredentials, { mailboxes: [{ address: "alice@example.net", password: "alice-in-wonderland" }] })).toEqual([
    "mailboxes[0].password: contains the mailbox name; choose a password unrelated to the address",
  ]);
  expect(lines(mailboxCredentials, mailbox({ passwordHash: "{PLAIN}x" }))[0]).toContain("mailboxes[0].passwordHash: uses scheme {PLAIN}");
});
