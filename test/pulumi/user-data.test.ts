// Which changes reach the host through user data (replacing the instance) and which reach it
// only through SSM: mailbox, alias and DMARC changes must never replace the mail host.
import type { MailConfigInput } from "@mailstack/core";
import { MailStack } from "@mailstack/pulumi";
import { fullConfig } from "../support/fixtures";
import { runProgram } from "../support/harness";
import { stackArgs } from "./args";
import { one, T } from "./helpers";

/** What a config deploys that a change could touch: user data, parameters, the DMARC record. */
async function deploy(input: MailConfigInput) {
  const run = await runProgram(() => {
    new MailStack("mail", stackArgs(input));
  });
  return {
    userData: run.userData(),
    userDataBase64: one(run, T.instance).inputs.userDataBase64 as string,
    parameters: JSON.stringify(run.ofType(T.parameter).map((p) => [p.inputs.name, p.inputs.value]).sort()),
    dmarc: run.named("mail-dns-dmarc-example.com").inputs.content as string,
    alarms: JSON.stringify(run.ofType("aws:sns/topicSubscription:TopicSubscription").map((r) => r.inputs.endpoint)),
  };
}

const changed = (label: string, change: (c: MailConfigInput) => void) => {
  const input = fullConfig();
  change(input);
  return [label, input] as const;
};

test("mailbox, alias, postmaster, admin CIDR, DMARC and backup keep changes leave the user data byte-identical; hostname, POP3 and the backup schedule change it", async () => {
  const base = await deploy(fullConfig());
  expect(base.userData.startsWith("#cloud-config\n")).toBe(true);

  const invisible = [
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
    changed("change the admin CIDRs", (c) => (c.adminCidrs = ["198.51.100.0/24", "2001:db8::/48"])),
    changed("drop the admin CIDRs", (c) => (c.adminCidrs = [])),
    changed("change the alert address", (c) => (c.alertEmail = "pager@example.net")),
    changed("change the backup keep policy", (c) => (c.backupKeep = { daily: 14, monthly: 24 })),
  ];
  for (const [label, input] of invisible) {
    const after = await deploy(input);
    expect({ label, userData: after.userData === base.userData, sent: after.userDataBase64 === base.userDataBase64 }).toEqual({
      label,
      userData: true,
      sent: true,
    });
    // The change was real: it reaches the host through SSM (or DNS) instead.
    const elsewhere = label.includes("DMARC")
      ? after.dmarc !== base.dmarc
      : label.includes("alert")
        ? after.alarms !== base.alarms
        : after.parameters !== base.parameters;
    expect({ label, elsewhere }).toEqual({ label, elsewhere: true });
  }

  const visible = [
    changed("change the hostname", (c) => (c.hostname = "mx.example.com")),
    changed("turn POP3 off", (c) => (c.pop3 = false)),
    changed("change the backup schedule", (c) => (c.backupSchedule = "*-*-* 04:00:00")),
  ];
  for (const [label, input] of visible) {
    const after = await deploy(input);
    expect({ label, same: after.userData === base.userData }).toEqual({ label, same: false });
  }
});
