// Which changes replace the instance and which reach the running host: only the host name
// is in the user data; host files reach it through the host bundle, mailboxes and aliases
// through SSM, and neither ever replaces the mail host.
import type { MailConfigInput } from "@mailstack/core";
import { MailStack } from "@mailstack/pulumi";
import { fullConfig } from "../support/fixtures";
import { runProgram } from "../support/harness";
import { stackArgs } from "./args";
import { one, T } from "./helpers";

/** What a config deploys that a change could touch: the instance, the bundle, parameters, the DMARC record. */
async function deploy(input: MailConfigInput) {
  const run = await runProgram(() => {
    new MailStack("mail", stackArgs(input));
  });
  const bundle = run.named("mail-host-bundle");
  const parameters = run.ofType(T.parameter);
  return {
    userData: run.userData(),
    instance: JSON.stringify(one(run, T.instance).inputs),
    bundle: { key: bundle.inputs.key as string, content: bundle.inputs.content as string },
    pointer: parameters.find((p) => p.name === "mail-host-bundle-pointer")!.inputs.value as string,
    parameters: JSON.stringify(parameters.filter((p) => p.inputs.type === "SecureString").map((p) => [p.inputs.name, p.inputs.value]).sort()),
    dmarc: run.named("mail-dns-dmarc-example.com").inputs.content as string,
    alarms: JSON.stringify(run.ofType("aws:sns/topicSubscription:TopicSubscription").map((r) => r.inputs.endpoint)),
  };
}

const changed = (label: string, change: (c: MailConfigInput) => void) => {
  const input = fullConfig();
  change(input);
  return [label, input] as const;
};

test("no setting but the host name reaches the instance: host-file changes update the bundle and its pointer, the rest reach SSM or DNS", async () => {
  const base = await deploy(fullConfig());
  expect(base.userData.startsWith("#cloud-config\n")).toBe(true);

  const hostFiles = [
    changed("turn POP3 off", (c) => (c.pop3 = false)),
    changed("change the backup schedule", (c) => (c.backupSchedule = "*-*-* 04:00:00")),
    changed("change the message size limit", (c) => (c.messageSizeLimitMiB = 30)),
  ];
  const elsewhere = [
    changed("add a mailbox", (c) => c.mailboxes.push({ address: "carol@example.com", password: "a wholly different passphrase" })),
    changed("change a password", (c) => (c.mailboxes[0].password = "another passphrase entirely")),
    changed("change a quota", (c) => (c.mailboxes[0].quota = "20G")),
    changed("change the aliases", (c) => {
      c.aliases = [...(c.aliases ?? []), { address: "sales@example.org", to: ["bob@example.com"] }];
      c.aliases[0].to = ["bob@example.com"];
    }),
    changed("change the DMARC policy", (c) => (c.dmarcPolicy = "reject")),
    // The first mailbox is the default postmaster: replacing it must not rebuild the host.
    changed("put a new mailbox first", (c) => c.mailboxes.unshift({ address: "carol@example.com", password: "a wholly different passphrase" })),
    changed("name another postmaster", (c) => (c.postmaster = "bob@example.com")),
    changed("add a domain", (c) => (c.extraDomains = [...(c.extraDomains ?? []), "example.net"])),
    changed("change the admin CIDRs", (c) => (c.adminCidrs = ["198.51.100.0/24", "2001:db8::/48"])),
    changed("drop the admin CIDRs", (c) => (c.adminCidrs = [])),
    changed("change the alert address", (c) => (c.alertEmail = "pager@example.net")),
    changed("change the backup keep policy", (c) => (c.backupKeep = { daily: 14, monthly: 24 })),
  ];
  for (const [label, input] of [...hostFiles, ...elsewhere]) {
    const after = await deploy(input);
    const bundleChanged = after.bundle.key !== base.bundle.key;
    expect({ label, instance: after.instance === base.instance, bundleChanged }).toEqual({ label, instance: true, bundleChanged: hostFiles.some(([l]) => l === label) });
    if (bundleChanged) {
      // A new object named by its new hash, and the pointer names it.
      expect(after.bundle.content).not.toBe(base.bundle.content);
      expect(JSON.parse(after.pointer)).toMatchObject({ key: after.bundle.key, sha256: after.bundle.key.match(/([0-9a-f]{64})\.json$/)![1] });
      continue;
    }
    // The change was real: it reaches the host through SSM (or DNS) instead.
    const reached = label.includes("DMARC") ? after.dmarc !== base.dmarc : label.includes("alert") ? after.alarms !== base.alarms : after.parameters !== base.parameters;
    expect({ label, reached }).toEqual({ label, reached: true });
  }

  const after = await deploy(changed("change the hostname", (c) => (c.hostname = "mx.example.com"))[1]);
  expect(after.userData === base.userData).toBe(false);
  expect(after.instance === base.instance).toBe(false);
});
