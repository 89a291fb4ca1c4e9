import { generatedRoleAliases } from "../../../packages/core/src/config/rules/generated-role-aliases";
import { check, PASSWORD } from "./check";

const generated = (fields: Parameters<typeof check>[1]) =>
  check(generatedRoleAliases, fields)
    .ctx.aliases.filter((a) => a.origin === "generated")
    .map((a) => `${a.address} → ${a.to.join(", ")}`);

test("postmaster@ and abuse@ of every domain go to the postmaster and abuse addresses", () => {
  expect(generated({ extraDomains: ["example.org"], abuse: "alice@example.com" })).toEqual([
    "postmaster@example.com → alice@example.com",
    "abuse@example.com → alice@example.com",
    "postmaster@example.org → alice@example.com",
    "abuse@example.org → alice@example.com",
  ]);
});

test("an address the user defined, or that would point at itself, is not generated", () => {
  const fields = {
    mailboxes: [{ address: "alice@example.com", password: PASSWORD }, { address: "postmaster@example.com", password: PASSWORD }],
    postmaster: "postmaster@example.com",
  };
  expect(generated(fields)).toEqual(["abuse@example.com → postmaster@example.com"]);
  expect(check(generatedRoleAliases, fields).issues).toEqual([]);
});
