// waitUntilHealthyMinutes: a `pulumi up` that ends when mail works, through a local command
// that runs `mailstack check --wait` with this deployment's own outputs.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MailStack, MailStackConfigError } from "@mailstack/pulumi";
import { parseCheckArgs, parseOutputs } from "../../packages/cli/src/check";
import { fullConfig, minimalConfig } from "../support/fixtures";
import { type Run, runFailing, runProgram } from "../support/harness";
import { stackArgs } from "./args";
import { one, T } from "./helpers";

const COMMAND = "command:local:Command";
const READINESS = "mailstack:index:MailReadiness";

let waiting: Run;
let stack: MailStack;
let without: Run;
beforeAll(async () => {
  waiting = await runProgram(() => {
    stack = new MailStack("mail", stackArgs({ ...fullConfig(), waitUntilHealthyMinutes: 20, healthCheckSkip: ["port:25", "dnsbl"] }));
    return { dnsRecords: stack.dnsRecords, publicIp: stack.publicIp, hostBundleSha256: stack.hostBundleSha256 };
  });
  without = await runProgram(() => {
    new MailStack("mail", stackArgs(minimalConfig()));
  });
});

test("the command runs the project's own mailstack check, waiting the configured time, leaving out what was asked", () => {
  const command = one(waiting, COMMAND);
  expect(command.inputs.create).toBe("npx --no -- mailstack check --outputs - --status --wait 1200 --skip port:25 --skip dnsbl");
  // The CLI takes these options as they are written, with the command's input for `-`.
  const dir = mkdtempSync(join(tmpdir(), "mailstack-readiness-"));
  try {
    writeFileSync(join(dir, "outputs.json"), command.inputs.stdin);
    const parsed = parseCheckArgs(command.inputs.create.split(" ").slice(5).map((w: string) => (w === "-" ? join(dir, "outputs.json") : w)));
    expect(parsed !== "help" && { wait: parsed.waitSeconds, statusPath: parsed.options.statusPath, expectBundle: parsed.options.expectBundle, skip: parsed.options.skip }).toEqual({
      wait: 1200,
      statusPath: "/mailstack/mailstack/test/mail",
      expectBundle: waiting.outputs.hostBundleSha256,
      skip: ["port:25", "dnsbl"],
    });
  } finally {
    rmSync(dir, { recursive: true });
  }
  expect(command.inputs.environment).toEqual({ AWS_REGION: "us-east-1" });
  // No delete or update command: removing the wait, or a change, does nothing to the host.
  expect(command.inputs.delete).toBeUndefined();
});

test("its input is this deployment's outputs, in the form `pulumi stack output --json` gives the check", () => {
  const command = one(waiting, COMMAND);
  const expected = parseOutputs(command.inputs.stdin, "-");
  expect(expected).toEqual({
    hostname: "mail.example.com",
    publicIp: waiting.outputs.publicIp,
    dnsRecords: waiting.outputs.dnsRecords,
    hostBundleSha256: waiting.outputs.hostBundleSha256,
    parameterPath: "/mailstack/mailstack/test/mail",
  });
  expect(expected.dnsRecords.length).toBeGreaterThan(10);
  // It runs again when any of it changes, and only then.
  expect(command.inputs.triggers).toEqual([createHash("sha256").update(command.inputs.stdin).digest("hex")]);
});

test("it comes last: after the host, its DNS records and reverse name, its parameters and monitoring", () => {
  const readiness = one(waiting, READINESS);
  expect(readiness.parent).toBe(one(waiting, T.mailStack).urn);
  expect(one(waiting, COMMAND).parent).toBe(readiness.urn);
  // A component in dependsOn stands for its children; every one of these is waited for.
  const urns = (type: string) => waiting.ofType(type).map((r) => r.urn);
  const awaited = [T.instance, T.dnsRecord, T.eipDomainName, T.parameter, "aws:cloudwatch/logGroup:LogGroup", "aws:cloudwatch/logMetricFilter:LogMetricFilter"].flatMap(urns);
  expect(awaited.length).toBeGreaterThan(20);
  expect(readiness.dependsOn).toEqual(expect.arrayContaining(awaited));
});

test("by default there is no wait", () => {
  expect(without.ofType(READINESS)).toEqual([]);
  expect(without.ofType(COMMAND)).toEqual([]);
});

test("without the mailstack command in the Pulumi project, the wait is refused before any resource", async () => {
  const elsewhere = mkdtempSync(join(tmpdir(), "mailstack-no-cli-"));
  const cwd = process.cwd();
  process.chdir(elsewhere);
  try {
    const { errors, run } = await runFailing([() => new MailStack("mail", stackArgs({ ...minimalConfig(), waitUntilHealthyMinutes: 5 }))]);
    expect(errors[0]).toBeInstanceOf(MailStackConfigError);
    expect((errors[0] as MailStackConfigError).issues).toEqual([{ path: "waitUntilHealthyMinutes", message: expect.stringContaining("npm install @mailstack/cli") }]);
    expect(run.record.resources.map((r) => r.type)).toEqual([T.stack]);
  } finally {
    process.chdir(cwd);
    rmSync(elsewhere, { recursive: true });
  }
});
