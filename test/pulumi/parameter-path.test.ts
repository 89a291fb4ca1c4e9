// The parameter path: by default `/mailstack/<project>/<stack>/<name>`, so that stacks of one
// name in two projects (one account, one region) never share parameters, IAM scope or objects
// in a shared backup bucket; a given path (an existing stack's pre-project default) wins, also
// from stack config; a path SSM or S3 would refuse is reported by field before any resource.
import { MailStack, MailStackConfigError, readStackConfig } from "@mailstack/pulumi";
import { SAMPLE_HASH } from "../support/fixtures";
import { type Run, runProgram } from "../support/harness";
import { stackArgs } from "./args";
import { allows, type Statement, statements, T } from "./helpers";

// A hash, not a password: no bcrypt in these runs.
const CONFIG = { domain: "example.com", mailboxes: [{ address: "alice@example.com", passwordHash: SAMPLE_HASH }] };
const SHARED_BUCKET = "shared-mail-backups";
const BUCKET_ARN = `arn:aws:s3:::${SHARED_BUCKET}`;
const ssmArn = (name: string) => `arn:aws:ssm:us-east-1:123456789012:parameter${name}`;

/** Everything in a run that follows the parameter path. */
function placement(run: Run) {
  const policy = (name: string): Statement[] => statements(run.named(name).inputs.policy);
  return {
    parameters: run.ofType(T.parameter).map((p) => p.inputs.name as string),
    objects: run.ofType("aws:s3/bucketObjectv2:BucketObjectv2").map((o) => o.inputs.key as string),
    pointer: /MAILSTACK_BUNDLE_POINTER=([^\s"]+)/.exec(run.userData())?.[1],
    ssmPolicy: policy("mail-host-parameters"),
    backupPolicy: policy("mail-host-backup"),
  };
}

/** Runs a MailStack "mail" in a project and stack of the mock runtime. */
const deploy = (project: string, stack: string, extra: Parameters<typeof stackArgs>[1] = {}) =>
  runProgram(() => void new MailStack("mail", stackArgs(CONFIG, { backupBucket: SHARED_BUCKET, ...extra })), { project, stack });

/** Runs a MailStack that must be refused, returning the error and every resource registered. */
async function refused(options: { project?: string; stack?: string; name?: string; parameterPath?: string; config?: object }) {
  let error: unknown;
  const run = await runProgram(
    () => {
      try {
        new MailStack(options.name ?? "mail", stackArgs({ ...CONFIG, ...options.config }, options.parameterPath === undefined ? {} : { parameterPath: options.parameterPath }));
      } catch (e) {
        error = e;
      }
    },
    { project: options.project, stack: options.stack },
  );
  expect(error).toBeInstanceOf(MailStackConfigError);
  // Nothing but the stack itself: the error comes before any resource.
  expect(run.record.resources.map((r) => r.type)).toEqual([T.stack]);
  return (error as MailStackConfigError).issues;
}

describe("two projects with a stack and a MailStack of the same name, in one account and region", () => {
  let alpha: Run;
  let beta: Run;
  beforeAll(async () => {
    alpha = await deploy("alpha", "prod");
    beta = await deploy("beta", "prod");
  });

  test("the default path names the project: every parameter, object and the user data's pointer are below /mailstack/<project>/<stack>/<name>", () => {
    for (const [project, run] of [["alpha", alpha], ["beta", beta]] as const) {
      const path = `/mailstack/${project}/prod/mail`;
      const { parameters, objects, pointer } = placement(run);
      expect(parameters.length).toBeGreaterThan(1);
      for (const name of parameters) expect([project, name.startsWith(`${path}/`)]).toEqual([project, true]);
      expect(parameters).toContain(`${path}/manifest`);
      expect(objects.sort()).toEqual([expect.stringMatching(new RegExp(`^host${path}/bundles/[0-9a-f]{64}\\.json$`)), `host${path}/runtime.json`]);
      expect(pointer).toBe(`${path}/host-bundle`);
    }
  });

  test("share no parameter or object name", () => {
    const names = (run: Run) => [...placement(run).parameters, ...placement(run).objects];
    expect(names(alpha).filter((n) => names(beta).includes(n))).toEqual([]);
  });

  test("each host's role reads its own parameters and host objects, and neither the other's", () => {
    for (const [own, other] of [["alpha", "beta"], ["beta", "alpha"]] as const) {
      const { ssmPolicy, backupPolicy } = placement(own === "alpha" ? alpha : beta);
      const path = (project: string) => `/mailstack/${project}/prod/mail`;
      expect([own, allows(ssmPolicy, "ssm:GetParameter", ssmArn(`${path(own)}/manifest`))]).toEqual([own, true]);
      expect([own, allows(ssmPolicy, "ssm:GetParametersByPath", ssmArn(path(own)))]).toEqual([own, true]);
      expect([own, allows(ssmPolicy, "ssm:GetParameter", ssmArn(`${path(other)}/manifest`))]).toEqual([own, false]);
      expect([own, allows(ssmPolicy, "ssm:GetParametersByPath", ssmArn(path(other)))]).toEqual([own, false]);
      expect([own, allows(ssmPolicy, "ssm:PutParameter", ssmArn(`${path(other)}/status/host-bundle`))]).toEqual([own, false]);
      // The pre-project default of a stack "prod" is neither's either.
      expect([own, allows(ssmPolicy, "ssm:GetParameter", ssmArn("/mailstack/prod/mail/manifest"))]).toEqual([own, false]);
      expect([own, allows(backupPolicy, "s3:GetObject", `${BUCKET_ARN}/host${path(own)}/runtime.json`)]).toEqual([own, true]);
      expect([own, allows(backupPolicy, "s3:GetObject", `${BUCKET_ARN}/host${path(other)}/runtime.json`)]).toEqual([own, false]);
    }
  });
});

describe("a given path wins over the default", () => {
  // What an existing stack, deployed when the default was /mailstack/<stack>/<name>, pins.
  const LEGACY = "/mailstack/prod/mail";

  test("as the parameterPath arg: parameters, objects, user data and the role's scope stay where the stack has them", async () => {
    const [byDefault, pinned] = [await deploy("alpha", "prod"), await deploy("alpha", "prod", { parameterPath: LEGACY })];
    expect(placement(byDefault).pointer).toBe("/mailstack/alpha/prod/mail/host-bundle");
    const { parameters, objects, pointer, ssmPolicy, backupPolicy } = placement(pinned);
    for (const name of parameters) expect(name.startsWith(`${LEGACY}/`)).toBe(true);
    for (const key of objects) expect(key.startsWith(`host${LEGACY}/`)).toBe(true);
    expect(pointer).toBe(`${LEGACY}/host-bundle`);
    expect(allows(ssmPolicy, "ssm:GetParameter", ssmArn(`${LEGACY}/manifest`))).toBe(true);
    expect(allows(ssmPolicy, "ssm:GetParameter", ssmArn("/mailstack/alpha/prod/mail/manifest"))).toBe(false);
    expect(allows(backupPolicy, "s3:GetObject", `${BUCKET_ARN}/host${LEGACY}/runtime.json`)).toBe(true);
    // Only the path differs: the same resources, by the same names.
    expect(pinned.record.resources.map((r) => r.name).sort()).toEqual(byDefault.record.resources.map((r) => r.name).sort());
  });

  test("as the stack config key parameterPath, which readStackConfig reads (empty means the default)", async () => {
    const config = { "mailstack:domain": "example.com", "mailstack:mailboxes": JSON.stringify(CONFIG.mailboxes) };
    let read: ReturnType<typeof readStackConfig> | undefined;
    const pinned = await runProgram(
      () => {
        read = readStackConfig();
        new MailStack("mail", read);
      },
      { project: "mailstack", stack: "prod", config: { ...config, "mailstack:parameterPath": LEGACY } },
    );
    expect(read?.parameterPath).toBe(LEGACY);
    expect(placement(pinned).pointer).toBe(`${LEGACY}/host-bundle`);
    for (const name of placement(pinned).parameters) expect(name.startsWith(`${LEGACY}/`)).toBe(true);
    const unset = await runProgram(() => void new MailStack("mail", readStackConfig()), { project: "mailstack", stack: "prod", config: { ...config, "mailstack:parameterPath": "" } });
    expect(placement(unset).pointer).toBe("/mailstack/mailstack/prod/mail/host-bundle");
  });

  test("a misspelt stack config key is refused with parameterPath as the suggestion, before any resource", async () => {
    let error: unknown;
    const run = await runProgram(
      () => {
        try {
          new MailStack("mail", readStackConfig());
        } catch (e) {
          error = e;
        }
      },
      { config: { "mailstack:domain": "example.com", "mailstack:mailboxes": JSON.stringify(CONFIG.mailboxes), "mailstack:parameterpath": "/mailstack/prod/mail" } },
    );
    expect(error).toBeInstanceOf(MailStackConfigError);
    const issues = (error as MailStackConfigError).issues;
    expect(issues.map((i) => i.path)).toEqual(["parameterpath"]);
    expect(issues[0].message).toContain('Did you mean "parameterPath"?');
    expect(run.record.resources.map((r) => r.type)).toEqual([T.stack]);
  });
});

describe("a path SSM or S3 would refuse is reported as parameterPath, with the fix, before any resource", () => {
  test("a project name with characters SSM refuses", async () => {
    const issues = await refused({ project: "my mail@home", stack: "prod" });
    expect(issues.map((i) => i.path)).toEqual(["parameterPath"]);
    expect(issues[0].message).toContain('the project name (Pulumi.yaml\'s name:) "my mail@home"');
    expect(issues[0].message).toContain("set parameterPath, e.g. /mailstack/my-mail-home/prod/mail");
    // Reported with the configuration's own problems, all at once.
    const both = await refused({ project: "my mail@home", config: { dmarcPolicy: "never" } });
    expect(both.map((i) => i.path).sort()).toEqual(["dmarcPolicy", "parameterPath"]);
  });

  test("a MailStack name SSM refuses, named as such", async () => {
    const issues = await refused({ project: "alpha", name: "my mail" });
    expect(issues.map((i) => i.path)).toEqual(["parameterPath"]);
    expect(issues[0].message).toContain('the MailStack\'s name "my mail"');
    expect(issues[0].message).not.toContain("project name");
    expect(issues[0].message).toContain("or name the MailStack with letters, digits and _ . - only");
  });

  test("a project name that makes the default longer than SSM's and S3's limits allow", async () => {
    const issues = await refused({ project: "p".repeat(1000) });
    expect(issues.map((i) => i.path)).toEqual(["parameterPath"]);
    expect(issues[0].message).toMatch(/^the default path "\/mailstack\/p+…p+\/test\/mail" is 1021 characters; .*use at most \d+ characters; shorten the project, stack or MailStack name, or set parameterPath$/);
  });

  test("a given path too deep for SSM's 15 levels, once mailstack's own levels are below it", async () => {
    // files/dkim/mail.key is three levels below the path: twelve is the most.
    const twelve = `/${Array.from({ length: 12 }, (_, i) => `l${i}`).join("/")}`;
    await deploy("alpha", "prod", { parameterPath: twelve });
    const issues = await refused({ parameterPath: `${twelve}/l12` });
    expect(issues.map((i) => i.path)).toEqual(["parameterPath"]);
    expect(issues[0].message).toContain("has 13 levels");
    expect(issues[0].message).toContain("use at most 12");
  });

  test("a given path in SSM's reserved aws and ssm names", async () => {
    for (const parameterPath of ["/aws/mail", "/SSM-mail/prod"]) {
      const issues = await refused({ parameterPath });
      expect(issues.map((i) => i.path)).toEqual(["parameterPath"]);
      expect(issues[0].message).toContain(`e.g. /mailstack${parameterPath}`);
    }
  });
});
