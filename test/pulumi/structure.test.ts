// Resource tree, names and type tokens; validation before any resource; reading stack config.
import { MailStack, MailStackConfigError, readStackConfig } from "@mailstack/pulumi";
import * as pulumi from "@pulumi/pulumi";
import { fullConfig, SAMPLE_HASH } from "../support/fixtures";
import { type Run, runProgram } from "../support/harness";
import { stackArgs } from "./args";
import { statements, T } from "./helpers";

/** Every resource fullConfig declares, by logical name. Renaming one replaces it in the cloud. */
const FULL_CONFIG_NAMES = [
  "mailstack-test",
  "mail",
  // firewall
  "mail-firewall",
  "mail-firewall-sg",
  "mail-firewall-in-25",
  "mail-firewall-in-465",
  "mail-firewall-in-587",
  "mail-firewall-in-993",
  "mail-firewall-in-995",
  "mail-firewall-in-80",
  "mail-firewall-in-443",
  "mail-firewall-in-ssh-203-0-113-0-24",
  "mail-firewall-out-smtp",
  "mail-firewall-out-http",
  "mail-firewall-out-https",
  "mail-firewall-out-dns-udp",
  "mail-firewall-out-dns-tcp",
  "mail-firewall-out-fuzzy",
  // DKIM, by selector; the host's TLS key
  "mail-dkim-mail",
  "mail-dkim-mail-key",
  "mail-tls",
  "mail-tls-key",
  // parameters
  "mail-parameters",
  // hashes of the mailboxes given by plain password, kept in state
  "mail-parameters-password-hashes",
  // One parameter per key; every other runtime file in one object, whatever the mailboxes.
  "mail-parameters-backup-restic-password",
  "mail-parameters-dkim-mail-key",
  "mail-parameters-tls-key-pem",
  "mail-parameters-runtime",
  "mail-parameters-manifest",
  // host
  "mail-host",
  "mail-host-role",
  "mail-host-ssm-agent",
  "mail-host-parameters",
  "mail-host-backup",
  "mail-host-bundle",
  "mail-host-bundle-pointer",
  "mail-host-profile",
  "mail-host-data",
  "mail-host-instance",
  "mail-host-data-attachment",
  "mail-host-eip",
  "mail-host-eip-association",
  // DNS: the mail host, then per domain
  "mail-dns",
  "mail-dns-host-a",
  "mail-dns-host-spf",
  "mail-dns-host-caa-issue-letsencrypt.org",
  "mail-dns-host-caa-iodef",
  ...["example.com", "example.org"].flatMap((d) => [
    `mail-dns-mx-${d}`,
    `mail-dns-spf-${d}`,
    `mail-dns-dkim-mail-${d}`,
    `mail-dns-dmarc-${d}`,
    `mail-dns-mta-sts-${d}`,
    `mail-dns-mta-sts-host-${d}`,
    `mail-dns-tls-rpt-${d}`,
    ...["submissions", "submission", "imaps", "imap", "pop3s", "pop3", "autodiscover"].map((s) => `mail-dns-srv-${s}-${d}`),
    `mail-dns-autoconfig-${d}`,
    `mail-dns-autodiscover-${d}`,
  ]),
  "mail-dns-dmarc-report-auth-example.org",
  "mail-ptr",
  // backup
  "mail-backup",
  "mail-backup-bucket",
  "mail-backup-ownership",
  "mail-backup-public-access",
  "mail-backup-versioning",
  "mail-backup-encryption",
  "mail-backup-tls-only",
  "mail-backup-lifecycle",
  "mail-backup-restic-password",
  // snapshots
  "mail-snapshots",
  "mail-snapshots-role",
  "mail-snapshots-role-policy",
  "mail-snapshots-policy",
  // alerts (fullConfig sets alertEmail)
  "mail-alerts",
  "mail-alerts-topic",
  "mail-alerts-email",
  "mail-alerts-system-check",
  "mail-alerts-instance-check",
  // monitoring: the log group, a filter per LOG_METRIC_FILTERS entry, an alarm per
  // MONITORING_ALARMS entry (fullConfig sets alertEmail), the dashboard, the host's permissions
  "mail-monitoring",
  "mail-monitoring-logs",
  ...["smtp-auth-failures", "imap-auth-failures", "rejected", "deferred", "bounced", "remote-blocklisted", "dkim-signing-errors", "rate-limited", "unit-failures"].map(
    (f) => `mail-monitoring-filter-${f}`,
  ),
  ...[
    "smtp-auth-failures",
    "imap-auth-failures",
    "rate-limited",
    "remote-blocklisted",
    "dkim-signing-errors",
    "unit-failures",
    "rejected-mail",
    "bounced-mail",
    "deferred-queue",
    "active-queue-stuck",
    "data-volume-full",
    "backup-age",
    "certificate-expiry",
    "bundle-not-applied",
    "host-silent",
  ].map((a) => `mail-monitoring-alarm-${a}`),
  "mail-monitoring-dashboard",
  "mail-monitoring-host-telemetry",
];

const COMPONENT_TYPES = [
  "mailstack:aws:MailAlerts",
  "mailstack:aws:MailBackup",
  "mailstack:aws:MailFirewall",
  "mailstack:aws:MailHost",
  "mailstack:aws:MailMonitoring",
  "mailstack:aws:MailParameters",
  "mailstack:aws:MailSnapshots",
  "mailstack:cloudflare:MailDnsCloudflare",
  "mailstack:dkim:DkimKey",
  "mailstack:index:MailStack",
  "mailstack:tls:TlsKey",
];

function checkTree(run: Run, stackNames: string[]) {
  const byUrn = new Map(run.record.resources.map((r) => [r.urn, r]));
  const roots = run.record.resources.filter((r) => r.type === T.stack);
  expect(roots).toHaveLength(1);
  expect(roots[0].parent).toBe("");
  const stacks = run.ofType(T.mailStack);
  expect(stacks.map((s) => s.name).sort()).toEqual([...stackNames].sort());
  for (const s of stacks) expect(s.parent).toBe(roots[0].urn);
  const stackUrns = new Set(stacks.map((s) => s.urn));

  for (const r of run.record.resources) {
    expect(r.urn).not.toBe("");
    if (r.type === T.stack) continue;
    expect({ name: r.name, hasParent: byUrn.has(r.parent) }).toEqual({ name: r.name, hasParent: true });
    if (!r.custom) {
      expect(r.type).toMatch(/^mailstack:[a-z]+:[A-Z][A-Za-z]+$/);
      continue;
    }
    // Follow the parents up to a MailStack: nothing hangs off the stack root directly.
    let at = byUrn.get(r.parent);
    const seen = new Set<string>();
    while (at && !stackUrns.has(at.urn) && !seen.has(at.urn)) {
      seen.add(at.urn);
      at = byUrn.get(at.parent);
    }
    expect({ name: r.name, reachesMailStack: at !== undefined && stackUrns.has(at.urn) }).toEqual({ name: r.name, reachesMailStack: true });
  }
  const urns = run.record.resources.map((r) => r.urn);
  expect(urns.filter((u, i) => urns.indexOf(u) !== i)).toEqual([]);
}

describe("structure", () => {
  let full: Run;
  let two: Run;
  beforeAll(async () => {
    full = await runProgram(() => {
      new MailStack("mail", stackArgs(fullConfig()));
    });
    two = await runProgram(() => {
      new MailStack("mail", stackArgs(fullConfig()));
      new MailStack("relay", {
        domain: "example.net",
        mailboxes: [{ address: "carol@example.net", passwordHash: SAMPLE_HASH }],
      });
    });
  });

  test("every resource has a parent, every custom resource sits below the MailStack, URNs are unique", () => {
    checkTree(full, ["mail"]);
    checkTree(two, ["mail", "relay"]);
  });

  test("components are typed mailstack:<module>:<Type>", () => {
    const components = full.record.resources.filter((r) => !r.custom && r.type !== T.stack);
    expect([...new Set(components.map((c) => c.type))].sort()).toEqual(COMPONENT_TYPES);
    expect(components).toHaveLength(COMPONENT_TYPES.length);
  });

  test("resource names are stable", () => {
    expect(full.record.resources.map((r) => r.name).sort()).toEqual([...FULL_CONFIG_NAMES].sort());
  });

  test("two MailStacks in one stack keep their resources and parameter paths apart", () => {
    const names = two.record.resources.map((r) => r.name);
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
    const paths = (prefix: string) =>
      two.ofType(T.parameter).filter((p) => p.name.startsWith(`${prefix}-`)).map((p) => p.inputs.name as string);
    expect(paths("mail").every((n) => n.startsWith("/mailstack/mailstack/test/mail/"))).toBe(true);
    expect(paths("relay").every((n) => n.startsWith("/mailstack/mailstack/test/relay/"))).toBe(true);
    expect(paths("relay").length).toBeGreaterThan(0);
    const [relayPolicy] = statements(two.named("relay-host-parameters").inputs.policy);
    expect(relayPolicy.Resource).toEqual([
      "arn:aws:ssm:us-east-1:123456789012:parameter/mailstack/mailstack/test/relay",
      "arn:aws:ssm:us-east-1:123456789012:parameter/mailstack/mailstack/test/relay/*",
    ]);
    // DLM takes every volume carrying any of a policy's tags: each stack's tag is its own.
    const targets = ["mail", "relay"].map((prefix) => two.named(`${prefix}-snapshots-policy`).inputs.policyDetails.targetTags);
    expect(targets).toEqual([{ "mailstack:snapshots": "mailstack/test/mail-snapshots" }, { "mailstack:snapshots": "mailstack/test/relay-snapshots" }]);
    for (const [i, prefix] of ["mail", "relay"].entries()) {
      expect(two.named(`${prefix}-host-data`).inputs.tags).toEqual(expect.objectContaining(targets[i]));
    }
  });
});

/** Runs a program that is expected to throw, returning the error and what was registered. */
async function runFailing(program: () => void, options?: Parameters<typeof runProgram>[1]): Promise<{ error: unknown; run: Run }> {
  let error: unknown;
  const run = await runProgram(() => {
    try {
      program();
    } catch (e) {
      error = e;
    }
  }, options);
  return { error, run };
}

const onlyTheStack = (run: Run) => expect(run.record.resources.map((r) => r.type)).toEqual([T.stack]);

describe("validation before any resource", () => {
  test("a bad config throws MailStackConfigError listing every issue, and declares nothing", async () => {
    const { error, run } = await runFailing(() => {
      new MailStack("mail", {
        domain: "example.com",
        mailboxes: [{ address: "alice@example.com", password: "short" }],
        adminCidrs: ["0.0.0.0/0", "::/0"],
        instanceType: "t4g.nano",
      });
    });
    expect(error).toBeInstanceOf(MailStackConfigError);
    expect(error).toBeInstanceOf(pulumi.RunError);
    const issues = (error as MailStackConfigError).issues;
    expect(issues.map((i) => i.path).sort()).toEqual(["adminCidrs[0]", "adminCidrs[1]", "instanceType", "mailboxes[0].password"]);
    expect((error as Error).message).toContain("mailboxes[0].password");
    onlyTheStack(run);
  });

  test("an unusable parameter path or AMI id is reported with the other issues, and nothing is declared", async () => {
    const attempts: [string, Partial<Parameters<typeof stackArgs>[1]>, string[]][] = [
      ["mail", { parameterPath: "mailstack/prod" }, ["parameterPath"]], // no leading slash
      ["mail", { parameterPath: "/mailstack/prod/" }, ["parameterPath"]], // trailing slash
      ["mail", { parameterPath: "/mailstack/my prod" }, ["parameterPath"]], // a space
      ["my mail", {}, ["parameterPath"]], // the default path from a name SSM refuses
      ["mail", { parameterPath: "/a//b", dmarcPolicy: "never" as "none" }, ["dmarcPolicy", "parameterPath"]],
      ["mail", { amiId: "ubuntu-24.04" }, ["amiId"]], // a name, not an AMI id
      ["mail", { amiId: "ami-XYZ", parameterPath: "x" }, ["amiId", "parameterPath"]],
    ];
    const errors: unknown[] = [];
    const { run } = await runFailing(() => {
      for (const [name, extra] of attempts) {
        try {
          new MailStack(name, stackArgs(fullConfig(), extra));
        } catch (e) {
          errors.push(e);
        }
      }
    });
    expect(errors).toHaveLength(attempts.length);
    attempts.forEach(([, , paths], i) => {
      expect(errors[i]).toBeInstanceOf(MailStackConfigError);
      expect((errors[i] as MailStackConfigError).issues.map((issue) => issue.path).sort()).toEqual(paths);
    });
    onlyTheStack(run);
  });

  test("a mistyped field is reported by its path, and nothing is declared", async () => {
    const { error, run } = await runFailing(() => {
      new MailStack("mail", { ...stackArgs(fullConfig()), pop3: "yes" as unknown as boolean });
    });
    expect(error).toBeInstanceOf(MailStackConfigError);
    expect((error as MailStackConfigError).issues.map((i) => i.path)).toEqual(["pop3"]);
    onlyTheStack(run);
  });
});

describe("readStackConfig", () => {
  const mailboxes = JSON.stringify([
    { address: "alice@example.com", password: "correct horse battery staple" },
    { address: "bob@example.com", passwordHash: SAMPLE_HASH },
  ]);

  test("returns args whose passwords are Pulumi secrets, and a stack built from them", async () => {
    let args: ReturnType<typeof readStackConfig> | undefined;
    const run = await runProgram(
      () => {
        args = readStackConfig();
        new MailStack("mail", args);
      },
      {
        config: {
          "mailstack:domain": "example.com",
          "mailstack:mailboxes": mailboxes,
          "mailstack:pop3": "true",
          "mailstack:adminCidrs": '["203.0.113.0/24"]',
          "mailstack:hostname": "",
        },
        secretKeys: ["mailstack:mailboxes"],
      },
    );
    expect(args).toBeDefined();
    const read = args!;
    expect(read.domain).toBe("example.com");
    expect(read.pop3).toBe(true);
    expect(read.adminCidrs).toEqual(["203.0.113.0/24"]);
    expect(read.hostname).toBeUndefined(); // empty means unset
    expect(read.mailboxes.map((m) => m.address)).toEqual(["alice@example.com", "bob@example.com"]);
    expect(pulumi.Output.isInstance(read.mailboxes[0].password)).toBe(true);
    expect(await pulumi.isSecret(read.mailboxes[0].password as pulumi.Output<string>)).toBe(true);
    expect(await pulumi.isSecret(read.mailboxes[1].passwordHash as pulumi.Output<string>)).toBe(true);
    expect(read.mailboxes[0].passwordHash).toBeUndefined();
    expect(read.mailboxes[1].password).toBeUndefined();
    // The stack built from them: POP3 on, SSH from the admin CIDR, secrets only in secret inputs.
    expect(run.named("mail-firewall-in-995").inputs.fromPort).toBe(995);
    expect(run.named("mail-firewall-in-ssh-203-0-113-0-24").inputs.cidrIpv4).toBe("203.0.113.0/24");
    const runtime = run.named("mail-parameters-runtime");
    expect(runtime.secretPaths).toContain("content");
    expect(JSON.parse(runtime.inputs.content).files.users).toContain(`bob@example.com:${SAMPLE_HASH}:`);
  });

  test("passwords set without --secret still come back as secrets", async () => {
    let args: ReturnType<typeof readStackConfig> | undefined;
    await runProgram(
      () => {
        args = readStackConfig();
      },
      { config: { "mailstack:domain": "example.com", "mailstack:mailboxes": mailboxes } },
    );
    expect(await pulumi.isSecret(args!.mailboxes[0].password as pulumi.Output<string>)).toBe(true);
    expect(await pulumi.isSecret(args!.mailboxes[1].passwordHash as pulumi.Output<string>)).toBe(true);
  });

  test("an unknown key is reported before any resource", async () => {
    const { error, run } = await runFailing(
      () => {
        new MailStack("mail", readStackConfig());
      },
      { config: { "mailstack:domain": "example.com", "mailstack:mailboxes": mailboxes, "mailstack:mailbox": mailboxes }, secretKeys: ["mailstack:mailboxes"] },
    );
    expect(error).toBeInstanceOf(MailStackConfigError);
    expect((error as MailStackConfigError).issues.map((i) => i.path)).toEqual(["mailbox"]);
    onlyTheStack(run);
  });

  test("a short password from config is reported as mailboxes[0].password before any resource", async () => {
    const { error, run } = await runFailing(
      () => {
        new MailStack("mail", readStackConfig());
      },
      {
        config: { "mailstack:domain": "example.com", "mailstack:mailboxes": JSON.stringify([{ address: "alice@example.com", password: "short" }]) },
        secretKeys: ["mailstack:mailboxes"],
      },
    );
    expect(error).toBeInstanceOf(MailStackConfigError);
    expect((error as MailStackConfigError).issues.map((i) => i.path)).toEqual(["mailboxes[0].password"]);
    // The message names the field, never the password itself.
    expect((error as Error).message).toContain("mailboxes[0].password");
    expect((error as Error).message).not.toContain('"short"');
    onlyTheStack(run);
  });
});
