import { subnetOrZone } from "../../../packages/core/src/config/rules/subnet-or-zone";
import { lines } from "./check";

test("either one passes", () => {
  expect(lines(subnetOrZone, { subnetId: "subnet-0123456789abcdef0" })).toEqual([]);
  expect(lines(subnetOrZone, { availabilityZone: "us-east-1b" })).toEqual([]);
});

test("both are refused at availabilityZone", () => {
  expect(lines(subnetOrZone, { subnetId: "subnet-0123456789abcdef0", availabilityZone: "us-east-1b" })).toEqual([
    "availabilityZone: conflicts with subnetId, which already fixes the zone; remove one",
  ]);
});
