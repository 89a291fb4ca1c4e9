import { noAliasLoops } from "../../../packages/core/src/config/rules/no-alias-loops";
import { lines, PASSWORD } from "./check";

const withBob = { mailboxes: [{ address: "alice@example.com", password: PASSWORD }, { address: "bob@example.com", password: PASSWORD }] };

test("chains without a cycle pass", () => {
  expect(lines(noAliasLoops, { ...withBob, aliases: [{ address: "a@example.com", to: ["b@example.com"] }, { address: "b@example.com", to: ["bob@example.com"] }] })).toEqual([]);
});

test("a cycle is reported once, at the first alias of it the user wrote", () => {
  const aliases = [
    { address: "entry@example.com", to: ["b@example.com"] },
    { address: "b@example.com", to: ["c@example.com"] },
    { address: "c@example.com", to: ["b@example.com"] },
  ];
  expect(lines(noAliasLoops, { ...withBob, aliases })).toEqual(["aliases[1].to: alias loop b@example.com → c@example.com → b@example.com; break the cycle"]);
});

test("a cycle through a generated role address counts", () => {
  expect(lines(noAliasLoops, { ...withBob, aliases: [{ address: "team@example.com", to: ["postmaster@example.com"] }], postmaster: "team@example.com" })).toEqual([
    "aliases[0].to: alias loop team@example.com → postmaster@example.com → team@example.com; break the cycle",
  ]);
});
