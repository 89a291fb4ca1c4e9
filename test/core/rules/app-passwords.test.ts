import { appPasswords } from "../../../packages/core/src/config/rules/app-passwords";
import { SAMPLE_HASH } from "../../support/fixtures";
import { check, lines, PASSWORD } from "./check";

const PHONE = "k3Jx9wQp2vLm8RtZ";
const withApps = (apps: unknown[], extra: Record<string, unknown> = {}, stack: Record<string, unknown> = {}) => ({
  ...stack,
  mailboxes: [{ address: "alice@example.com", password: PASSWORD, appPasswords: apps as never, ...extra }],
});

test("named app passwords, by password or hash, for some or every protocol, pass; the mailbox holds each with its protocols", () => {
  const fields = withApps([{ name: "phone", password: PHONE, services: ["submission", "imap", "submission"].slice(0, 2) }, { name: "work-laptop-2", passwordHash: SAMPLE_HASH }], { requireAppPasswords: true });
  const { issues, ctx } = check(appPasswords, fields);
  expect(issues).toEqual([]);
  expect(ctx.mailboxes[0].appPasswords).toEqual([
    { name: "phone", credential: "password", services: ["submission", "imap"] },
    // Left out, the protocols are those the host offers: no POP3 here.
    { name: "work-laptop-2", credential: "passwordHash", services: ["imap", "submission"] },
  ]);
  expect(ctx.mailboxes[0].requireAppPasswords).toBe(true);
  // With POP3 on, an app password without services gets it too.
  expect(check(appPasswords, withApps([{ name: "phone", password: PHONE }], {}, { pop3: true })).ctx.mailboxes[0].appPasswords[0].services).toEqual(["imap", "pop3", "submission"]);
});

test("a secret not known yet (a Pulumi output) is left to the component; only plain strings are compared", () => {
  const output = { secret: true };
  expect(lines(appPasswords, withApps([{ name: "phone", password: output }, { name: "laptop", password: output }]))).toEqual([]);
});

test("refuses, each at its field: a shared secret, a name used twice, a mailbox left with nothing to log in with", () => {
  expect(lines(appPasswords, withApps([{ name: "phone", password: PASSWORD }]))).toEqual([
    "mailboxes[0].appPasswords[0].password: is the same as mailboxes[0].password; an app password must be a secret of its own, or revoking it revokes nothing",
  ]);
  expect(lines(appPasswords, withApps([{ name: "phone", password: PHONE }, { name: "phone", passwordHash: SAMPLE_HASH }]))).toEqual([
    "mailboxes[0].appPasswords[1].name: \"phone\" is already the name of mailboxes[0].appPasswords[0]; give each app password of a mailbox its own name",
  ]);
  expect(lines(appPasswords, withApps([], { requireAppPasswords: true }))).toEqual([
    "mailboxes[0].requireAppPasswords: refuses the mailbox's password, and it has no app password: nothing could log in; add one under appPasswords first, or set requireAppPasswords to false",
  ]);
});
