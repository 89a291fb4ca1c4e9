import { kmsKeyInStackRegion } from "../../../packages/core/src/config/rules/kms-key-in-stack-region";
import { lines } from "./check";

const key = (region: string) => `arn:aws:kms:${region}:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab`;

test("a key of the stack's region passes; so does an output, or any key when the region is unknown", () => {
  expect(lines(kmsKeyInStackRegion, { backupKmsKeyArn: key("us-east-1") }, { region: "us-east-1" })).toEqual([]);
  expect(lines(kmsKeyInStackRegion, { backupKmsKeyArn: { output: true } as never }, { region: "us-east-1" })).toEqual([]);
  expect(lines(kmsKeyInStackRegion, { backupKmsKeyArn: key("eu-west-1") })).toEqual([]);
});

test("a key of another region is refused", () => {
  expect(lines(kmsKeyInStackRegion, { backupKmsKeyArn: key("eu-west-1") }, { region: "us-east-1" })).toEqual([
    "backupKmsKeyArn: is a key in eu-west-1, but the bucket is in us-east-1 and S3 can use only keys of its own region; use a key in us-east-1",
  ]);
});
