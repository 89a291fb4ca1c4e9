import { zoneInStackRegion } from "../../../packages/core/src/config/rules/zone-in-stack-region";
import { lines } from "./check";

test("a zone of the stack's region passes, and any zone when the region is unknown", () => {
  expect(lines(zoneInStackRegion, { availabilityZone: "eu-west-1b" }, { region: "eu-west-1" })).toEqual([]);
  expect(lines(zoneInStackRegion, { availabilityZone: "eu-west-1b" })).toEqual([]);
});

test("a zone of another region is refused", () => {
  expect(lines(zoneInStackRegion, { availabilityZone: "eu-central-1b" }, { region: "us-east-1" })).toEqual([
    'availabilityZone: "eu-central-1b" is a zone of eu-central-1, but the stack deploys to us-east-1 (aws:region); use a zone of us-east-1, or leave it out for the region\'s first zone',
  ]);
});
