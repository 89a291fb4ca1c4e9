import { instanceTypeKnown } from "../../../packages/core/src/config/rules/instance-type-known";
import { check, lines } from "./check";

test.each([
  ["t4g.small", "arm64"],
  ["t3.2xlarge", "x86_64"],
  ["m7g.metal", "arm64"],
  ["c7i.metal-24xl", "x86_64"],
  ["m7i-flex.large", "x86_64"],
] as const)("%s is %s", (instanceType, architecture) => {
  const { issues, ctx } = check(instanceTypeKnown, { instanceType });
  expect([issues, ctx.architecture]).toEqual([[], architecture]);
});

test("a size EC2 does not have is refused with the nearest one", () => {
  expect(lines(instanceTypeKnown, { instanceType: "t4g.smal" })).toEqual(['instanceType: "t4g.smal" is not an EC2 instance type: EC2 has no size "smal"; did you mean t4g.small?']);
  expect(lines(instanceTypeKnown, { instanceType: "m7g.2xlarg" })[0]).toContain("did you mean m7g.2xlarge?");
  expect(lines(instanceTypeKnown, { instanceType: "t3.huge" })[0]).toContain('EC2 has no size "huge"; sizes are nano, micro, small, medium, large, xlarge, metal, 2xlarge');
});

test("too small, unknown without architecture, or contradicting it", () => {
  expect(lines(instanceTypeKnown, { instanceType: "t4g.micro" })[0]).toContain("under 2 GiB of memory");
  expect(lines(instanceTypeKnown, { instanceType: "zz9.large" })[0]).toContain('instance family "zz9" is not in mailstack\'s architecture table');
  expect(check(instanceTypeKnown, { instanceType: "zz9.large", architecture: "x86_64" }).ctx.architecture).toBe("x86_64");
  expect(lines(instanceTypeKnown, { instanceType: "t3.small", architecture: "arm64" })[0]).toContain("is x86_64, but architecture says arm64");
});
