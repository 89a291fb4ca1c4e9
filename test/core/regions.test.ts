import { AWS_REGION, checkAvailabilityZone, checkRegion, KMS_KEY_ARN, KNOWN_AWS_REGIONS } from "@mailstack/core";

test("every known region has the form of a region, and none is listed twice", () => {
  expect(KNOWN_AWS_REGIONS.filter((r) => !AWS_REGION.test(r))).toEqual([]);
  expect(new Set(KNOWN_AWS_REGIONS).size).toBe(KNOWN_AWS_REGIONS.length);
  expect(KNOWN_AWS_REGIONS).toEqual(expect.arrayContaining(["us-east-1", "cn-northwest-1", "us-gov-west-1"]));
});

test("a region newer than the list is accepted when it has the form of one", () => {
  for (const region of ["ap-southeast-9", "eu-central-3", "xx-north-1", "eusc-de-east-1"]) expect([region, checkRegion(region)]).toEqual([region, undefined]);
});

test.each([
  ["us-east", '"us-east" is not an AWS region; did you mean us-east-1?'],
  ["us-esat-1", "did you mean us-east-1?"],
  ["eu-centrl-1", "did you mean eu-central-1?"],
  ["US-EAST-1", "did you mean us-east-1?"],
  ["eu-central-1a", '"eu-central-1a" is not an AWS region; write it like eu-central-1, without the zone letter'],
  ["Frankfurt", '"Frankfurt" is not an AWS region; write it like eu-central-1'],
])("%j is refused: %s", (region, message) => {
  expect(checkRegion(region)).toContain(message);
});

test("an availability zone is a region and a letter", () => {
  expect(checkAvailabilityZone("eu-west-1b")).toBeUndefined();
  expect(checkAvailabilityZone("us-gov-west-1a")).toBeUndefined();
  expect(checkAvailabilityZone("us-esat-1b")).toBe('"us-esat-1b" must look like us-east-1a (a region and a zone letter); did you mean us-east-1b?');
  expect(checkAvailabilityZone("eu-west-1")).toContain("must look like us-east-1a");
});

test("a KMS key ARN names its region, in any partition", () => {
  expect(KMS_KEY_ARN.exec("arn:aws-cn:kms:cn-north-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")?.[1]).toBe("cn-north-1");
  expect(KMS_KEY_ARN.exec("arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab")?.[1]).toBe("us-gov-west-1");
});
