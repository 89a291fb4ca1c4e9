import { distinctDomains } from "../../../packages/core/src/config/rules/distinct-domains";
import { check, lines } from "./check";

test("normalises the domains, primary first", () => {
  const { issues, ctx } = check(distinctDomains, { domain: "Example.COM.", extraDomains: ["bücher.example"] });
  expect(issues).toEqual([]);
  expect([ctx.domain, ctx.domains]).toEqual(["example.com", ["example.com", "xn--bcher-kva.example"]]);
});

test("refuses a domain listed twice, or the primary again", () => {
  expect(lines(distinctDomains, { extraDomains: ["example.org", "EXAMPLE.org", "example.com"] })).toEqual([
    'extraDomains[1]: "EXAMPLE.org" is listed twice (or is the primary domain); remove it',
    'extraDomains[2]: "example.com" is listed twice (or is the primary domain); remove it',
  ]);
});

test("reports an invalid primary and keeps checking the others", () => {
  const { issues, ctx } = check(distinctDomains, { domain: "localhost", extraDomains: ["example.org"] });
  expect(issues.map((i) => i.path)).toEqual(["domain"]);
  expect([ctx.domain, ctx.domains]).toEqual([undefined, ["example.org"]]);
});
