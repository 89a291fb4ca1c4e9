// MailStack passes the stack's aws:region to the core, which refuses a region that cannot
// exist and a zone of another region before any resource.
import { MailStack, MailStackConfigError } from "@mailstack/pulumi";
import { fullConfig } from "../support/fixtures";
import { runProgram } from "../support/harness";
import { stackArgs } from "./args";
import { T } from "./helpers";

async function attempt(make: () => void, config?: Record<string, string>): Promise<{ error: unknown; types: string[] }> {
  let error: unknown;
  const run = await runProgram(
    () => {
      try {
        make();
      } catch (e) {
        error = e;
      }
    },
    { config },
  );
  return { error, types: run.record.resources.map((r) => r.type) };
}

const issues = (error: unknown) => (error as MailStackConfigError).issues;

test("a region that does not exist is refused at aws:region, with the nearest", async () => {
  const { error, types } = await attempt(() => new MailStack("mail", stackArgs(fullConfig())), { "aws:region": "us-east" });
  expect(error).toBeInstanceOf(MailStackConfigError);
  expect(issues(error)).toEqual([{ path: "aws:region", message: '"us-east" is not an AWS region; did you mean us-east-1?' }]);
  expect(types).toEqual([T.stack]);
});

test("an availability zone of another region is refused", async () => {
  const { error, types } = await attempt(() => new MailStack("mail", stackArgs({ ...fullConfig(), availabilityZone: "eu-central-1b" })), { "aws:region": "us-east-1" });
  expect(issues(error)).toEqual([{ path: "availabilityZone", message: expect.stringContaining("is a zone of eu-central-1, but the stack deploys to us-east-1") }]);
  expect(types).toEqual([T.stack]);
});

test("a zone of the stack's region is taken", async () => {
  const { error } = await attempt(() => new MailStack("mail", stackArgs({ ...fullConfig(), availabilityZone: "eu-west-1b" })), { "aws:region": "eu-west-1" });
  expect(error).toBeUndefined();
});

test.each([
  ["eu-west-1", "amazonaws.com"],
  ["cn-north-1", "amazonaws.com.cn"],
])("in %s the host fetches its bundle from that region's S3 endpoint, in the backup bucket", async (region, dnsSuffix) => {
  const run = await runProgram(() => new MailStack("mail", stackArgs(fullConfig())), { config: { "aws:region": region } });
  const bundle = run.named("mail-host-bundle");
  expect(JSON.parse(run.named("mail-host-bundle-pointer").inputs.value)).toEqual({
    bucket: bundle.inputs.bucket,
    key: bundle.inputs.key,
    sha256: bundle.inputs.key.match(/^host\/mailstack\/mailstack\/test\/mail\/bundles\/([0-9a-f]{64})\.json$/)[1],
    endpoint: `https://s3.${region}.${dnsSuffix}`,
  });
  expect(bundle.inputs.bucket).toBe(run.named("mail-backup-bucket").state.bucket);
});
