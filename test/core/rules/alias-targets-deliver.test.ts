import { aliasTargetsDeliver } from "../../../packages/core/src/config/rules/alias-targets-deliver";
import { lines } from "./check";

test("mailboxes, aliases and the role addresses to come are targets that deliver", () => {
  const aliases = [
    { address: "team@example.com", to: ["alice@example.com", "info@example.com", "postmaster@example.com", "abuse@example.com"] },
    { address: "info@example.com", to: ["alice@example.com"] },
  ];
  expect(lines(aliasTargetsDeliver, { aliases })).toEqual([]);
});

test("refuses a hosted target nothing receives at", () => {
  expect(lines(aliasTargetsDeliver, { aliases: [{ address: "info@example.com", to: ["carol@example.com"] }] })).toEqual([
    'aliases[0].to[0]: "carol@example.com" is neither a mailbox nor an alias here, so mail to info@example.com would bounce; add it or fix the spelling',
  ]);
});

test("forwards off the server only with allowExternalForwarding", () => {
  const aliases = [{ address: "fwd@example.com", to: ["someone@gmail.com"] }];
  expect(lines(aliasTargetsDeliver, { aliases })).toEqual([
    'aliases[0].to[0]: "someone@gmail.com" is outside the hosted domains; set allowExternalForwarding: true to forward mail off this server',
  ]);
  expect(lines(aliasTargetsDeliver, { aliases, allowExternalForwarding: true })).toEqual([]);
});
