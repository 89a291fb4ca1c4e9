import { vpcNeedsSubnet } from "../../../packages/core/src/config/rules/vpc-needs-subnet";
import { lines } from "./check";

test("a VPC with a subnet, or a subnet alone, passes", () => {
  expect(lines(vpcNeedsSubnet, { vpcId: "vpc-0123456789abcdef0", subnetId: "subnet-0123456789abcdef0" })).toEqual([]);
  expect(lines(vpcNeedsSubnet, { subnetId: "subnet-0123456789abcdef0" })).toEqual([]);
});

test("a VPC without a subnet is refused at subnetId", () => {
  expect(lines(vpcNeedsSubnet, { vpcId: "vpc-0123456789abcdef0" })).toEqual(["subnetId: is required when vpcId is set: name the public subnet the mail host goes into"]);
});
