import { stackRegionExists } from "../../../packages/core/src/config/rules/stack-region-exists";
import { check, lines } from "./check";

test("without a region nothing is checked or filled", () => {
  const { issues, ctx } = check(stackRegionExists);
  expect([issues, ctx.region]).toEqual([[], undefined]);
});

test("a known region, or a new one of the same form, is filled", () => {
  expect(check(stackRegionExists, {}, { region: "eu-west-1" }).ctx.region).toBe("eu-west-1");
  expect(check(stackRegionExists, {}, { region: "ap-southeast-9" }).ctx.region).toBe("ap-southeast-9");
});

test("a region that cannot exist is refused at aws:region, with the nearest", () => {
  expect(lines(stackRegionExists, {}, { region: "us-east" })).toEqual(['aws:region: "us-east" is not an AWS region; did you mean us-east-1?']);
  expect(check(stackRegionExists, {}, { region: "Frankfurt" }).ctx.region).toBeUndefined();
});
