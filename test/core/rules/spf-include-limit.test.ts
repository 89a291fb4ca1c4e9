import { spfIncludeLimit } from "../../../packages/core/src/config/rules/spf-include-limit";
import { check, lines } from "./check";

test("fills the includes, without the include: prefix or repeats; service labels allowed", () => {
  expect(check(spfIncludeLimit, { spfInclude: ["include:AmazonSES.com", "_spf.google.com", "amazonses.com"] }).ctx.spfIncludes).toEqual(["amazonses.com", "_spf.google.com"]);
});

test("nine fit the lookup limit, ten do not", () => {
  const domains = (n: number) => Array.from({ length: n }, (_, i) => `s${i}.example.net`);
  expect(lines(spfIncludeLimit, { spfInclude: domains(9) })).toEqual([]);
  expect(lines(spfIncludeLimit, { spfInclude: domains(10) })).toEqual([
    "spfInclude: lists 10 domains; SPF allows 10 DNS lookups and `mx` takes one, so keep at most 9 (fewer if they include others)",
  ]);
});
