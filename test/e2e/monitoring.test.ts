/**
 * What the stack's monitoring watches, made by the real daemons (TestStack): every metric
 * filter of LOG_METRIC_FILTERS matches the line the daemons write for its event, converted to
 * the shipped event as the journal would give it to mailstack-logs, and none matches a run of
 * normal traffic; and mailstack-metrics, run on the stack against CloudWatch and SSM
 * stand-ins, reports the numbers the host is in.
 *
 * The stack's daemons log to files (stack.ts); on the host they log to syslog, which the journal
 * keeps as identifier, pid and message. The conversion, per file: Postfix's maillog_file lines
 * are syslog's (`… host postfix/smtpd[12]: text`); Dovecot's log file adds the level after the
 * process's prefix (`imap-login: Info: text`), which its syslog lines do not have; rspamd's
 * file lines start with a time and `#pid(process)`, its syslog lines with the `<id>; module;`
 * that follows.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FAILURE_TAG, filterMatches, HOST_HEALTH_PARAMETER, HOST_METRICS, LOG_METRIC_FILTERS, logEventText, METRIC_DIMENSION, METRIC_NAMESPACE } from "@mailstack/core";
import { FakeCloudWatch, FakeSsm, fakeAwsEnv } from "../support/fake-aws";
import { TestJournal } from "../support/journal";
import { HOST_IP, message, OUTSIDE_DOMAIN, OUTSIDE_IP, source, TestStack } from "../support/stack";
import { hostSettings, requireRoot, requireTools, run, runAsync, runOk, TEST_PARAMS } from "../support/tools";

requireTools("postconf", "doveconf", "doveadm", "rspamadm", "ip", "openssl", "python3", "boto3", "python3-systemd", "systemd-journald", "unshare", "nsenter", "journalctl");
requireRoot("the stack runs in a network namespace of its own");

const SCRIPTS = join(__dirname, "..", "..", "packages", "core", "scripts");
/** The outside provider's server: the sink, which refuses blocked@ and unknown@ as a remote server would. */
const SINK_PORT = 2525;
/** A domain whose server is down: mail to it is deferred. */
const DOWN_DOMAIN = "down.example";
const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const LIMITED = "carol@example.com";

let stack: TestStack;
let sink: ChildProcess;
let sinkDir: string;

beforeAll(async () => {
  const route = `smtp:[${OUTSIDE_IP}]:${SINK_PORT}`;
  stack = await TestStack.start(
    {
      domain: "example.com",
      pop3: true,
      mailboxes: [
        { address: ALICE, password: "first long test passphrase" },
        { address: BOB, password: "second long test passphrase" },
        { address: LIMITED, password: "third long test passphrase", sendingLimits: { messagesPerHour: 1 } },
      ],
    },
    { postfixOverrides: { transport_maps: `inline:{ ${OUTSIDE_DOMAIN}=${route}, ${DOWN_DOMAIN}=smtp:[${OUTSIDE_IP}]:2526 }`, smtp_bind_address: HOST_IP } },
  );
  sinkDir = mkdtempSync("/tmp/ms-sink-");
  sink = spawn("ip", ["netns", "exec", stack.ns, process.execPath, join(__dirname, "../support/smtp-sink.mjs"), OUTSIDE_IP, String(SINK_PORT), sinkDir], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    sink.stdout!.once("data", () => resolve());
    sink.once("exit", (code) => reject(new Error(`the sink exited (${code})`)));
  });
}, 180000);

afterAll(async () => {
  sink?.kill();
  await stack?.stop();
  if (sinkDir) rmSync(sinkDir, { recursive: true, force: true });
});

/** A daemon's log file as the shipper would have its lines: (identifier, pid, message) to event text. */
function events(name: "mail" | "dovecot" | "rspamd", text = stack.log(name)): string[] {
  const lines = text.split("\n").filter(Boolean);
  if (name === "mail") {
    return lines.flatMap((l) => {
      const m = /^\S+\s+\d+\s+[\d:.]+\s+\S+\s+([^\s[]+)\[(\d+)\]: (.*)$/.exec(l);
      return m ? [logEventText(m[1], m[2], m[3])] : [];
    });
  }
  if (name === "dovecot") {
    // Dovecot's own log process writes syslog's lines; its pid is no part of the file's.
    return lines.flatMap((l) => {
      const m = /^\S+\s+\d+\s+[\d:.]+\s+(?:([^:]+): )?(?:Info|Warning|Error|Fatal|Panic): (.*)$/.exec(l);
      return m ? [logEventText("dovecot", 1, m[1] ? `${m[1]}: ${m[2]}` : m[2])] : [];
    });
  }
  return lines.flatMap((l) => {
    const m = /^\S+ \S+ #(\d+)\([^)]*\) (.*)$/.exec(l);
    return m ? [logEventText("rspamd", m[1], m[2])] : [];
  });
}

const allEvents = () => [...events("mail"), ...events("dovecot"), ...events("rspamd")];
const auth = (user: string, password: string) => `AUTH PLAIN ${Buffer.from(`\0${user}\0${password}`).toString("base64")}`;
const EHLO = "EHLO client.example";

async function submit(user: string, to: string, subject: string, client: string, password = stack.password(user)) {
  return stack.smtp({ port: 587, source: client, steps: [EHLO, { starttls: true }, EHLO, auth(user, password), `MAIL FROM:<${user}>`, `RCPT TO:<${to}>`, { data: message(user, to, subject) }, "QUIT"], timeoutMs: 60000 });
}

/** Waits for an event the filter counts; the event. */
async function lineFor(key: keyof typeof LOG_METRIC_FILTERS, also: (e: string) => boolean = () => true): Promise<string> {
  let found: string | undefined;
  await stack.until(`a line for ${key}`, () => (found = allEvents().find((e) => filterMatches(LOG_METRIC_FILTERS[key], e) && also(e))) !== undefined, 60000);
  return found!;
}

describe("the metric filters match the real daemons' lines", () => {
  // Normal traffic first, so that no line of a failure falls in its window.
  test("a run of normal traffic matches no filter", async () => {
    const before = { mail: stack.log("mail").length, dovecot: stack.log("dovecot").length, rspamd: stack.log("rspamd").length };
    expect((await stack.imap({ port: 993, source: source(30), user: ALICE, pass: stack.password(ALICE), actions: [{ list: "INBOX" }] })).error).toBeUndefined();
    const pop3 = stack.exec("sh", ["-c", `(printf 'USER ${BOB}\\r\\nPASS ${stack.password(BOB)}\\r\\nSTAT\\r\\n'; sleep 2; printf 'QUIT\\r\\n') | openssl s_client -connect 127.0.0.1:995 -quiet 2>/dev/null`]);
    expect(pop3.stdout).toMatch(/\+OK Logged in/);
    for (const [to, subject] of [[BOB, "local delivery"], [`friend@${OUTSIDE_DOMAIN}`, "outbound delivery"]]) {
      expect((await submit(ALICE, to, subject, source(31))).replies.at(-2)?.reply).toMatch(/250 2\.0\.0 Ok: queued/);
    }
    await stack.inbound([ALICE], message(`someone@${OUTSIDE_DOMAIN}`, ALICE, "inbound delivery"));
    await stack.until("the deliveries", () => (stack.log("mail").slice(before.mail).match(/status=sent/g) ?? []).length >= 3, 60000);
    const normal = [
      ...events("mail", stack.log("mail").slice(before.mail)),
      ...events("dovecot", stack.log("dovecot").slice(before.dovecot)),
      ...events("rspamd", stack.log("rspamd").slice(before.rspamd)),
    ];
    expect(normal.length).toBeGreaterThan(30);
    expect(normal.filter((e) => /status=sent/.test(e)).length).toBeGreaterThanOrEqual(3);
    const counted = Object.entries(LOG_METRIC_FILTERS).flatMap(([key, f]) => normal.filter((e) => filterMatches(f, e)).map((e) => `${key}: ${e}`));
    expect(counted).toEqual([]);
  });

  test("a failed SMTP AUTH on 587", async () => {
    const s = await stack.smtp({ port: 587, source: source(40), steps: [EHLO, { starttls: true }, EHLO, auth(ALICE, "not the password"), "QUIT"] });
    expect(s.replies.find((r) => r.sent.startsWith("AUTH"))?.reply).toMatch(/^535 /);
    expect(await lineFor("smtpAuthFailures")).toMatch(/^postfix\/submission\/smtpd\[\d+\]: warning: unknown\[198\.51\.100\.40\]: SASL PLAIN authentication failed/);
  });

  test("a failed IMAP login and a failed POP3 login", async () => {
    expect((await stack.imap({ port: 993, source: source(41), user: ALICE, pass: "not the password", actions: [] })).error).toBeDefined();
    expect(await lineFor("imapAuthFailures", (e) => e.includes("imap-login"))).toMatch(/^dovecot\[\d+\]: imap-login: Disconnected.*auth failed/);
    stack.exec("sh", ["-c", `(printf 'USER ${BOB}\\r\\nPASS not-the-password\\r\\n'; sleep 4; printf 'QUIT\\r\\n') | openssl s_client -connect 127.0.0.1:995 -quiet 2>/dev/null`]);
    expect(await lineFor("imapAuthFailures", (e) => e.includes("pop3-login"))).toMatch(/^dovecot\[\d+\]: pop3-login: .*auth failed/);
  });

  test("a recipient refused at RCPT", async () => {
    const replies = await stack.inbound([`nobody@example.com`]);
    expect(replies[1]).toMatch(/^550 5\.1\.1 /);
    expect(await lineFor("rejected", (e) => e.includes("nobody@example.com"))).toMatch(/^postfix\/smtpd\[\d+\]: NOQUEUE: reject: RCPT from .*: 550 5\.1\.1 <nobody@example\.com>/);
  });

  test("a deferral, a bounce, and a remote server's blocklist refusal", async () => {
    for (const to of [`someone@${DOWN_DOMAIN}`, `unknown@${OUTSIDE_DOMAIN}`, `blocked@${OUTSIDE_DOMAIN}`]) {
      expect((await submit(BOB, to, `to ${to}`, source(42))).replies.at(-2)?.reply).toMatch(/250 2\.0\.0 Ok: queued/);
    }
    expect(await lineFor("deferred")).toMatch(/^postfix\/smtp\[\d+\]: \w+: to=<someone@down\.example>.* status=deferred \(connect to 198\.51\.100\.20\[198\.51\.100\.20\]:2526: Connection refused\)/);
    expect(await lineFor("bounced", (e) => e.includes("unknown@"))).toMatch(/^postfix\/smtp\[\d+\]: \w+: to=<unknown@outside\.example>.* status=bounced \(host .* said: 550 5\.1\.1 /);
    expect(await lineFor("remoteBlocklisted")).toMatch(/^postfix\/smtp\[\d+\]: \w+: to=<blocked@outside\.example>.* said: 554 5\.7\.1 Service unavailable; Client host \[192\.0\.2\.25\] blocked using zen\.spamhaus\.org/);
  });

  test("a rate-limit refusal", async () => {
    expect((await submit(LIMITED, BOB, "the one an hour", source(43))).replies.at(-2)?.reply).toMatch(/250 2\.0\.0 Ok: queued/);
    expect((await submit(LIMITED, BOB, "one too many", source(43))).replies.at(-2)?.reply).toMatch(/451 4\.7\.1 /);
    expect(await lineFor("rateLimited")).toMatch(/^rspamd\[\d+\]: <\w+>; lua; ratelimit\.lua:\d+: ratelimit "mailstack_messages_per_hour_1\(messages:carol@example\.com\)" exceeded/);
  });

  test("a DKIM signing error: the key unreadable", async () => {
    const key = run("sh", ["-c", `ls ${stack.host.env.paths.runtime}/dkim/*.key`]).stdout.trim();
    // rspamd keeps a key it has loaded until the file's mtime changes.
    chmodSync(key, 0o000);
    utimesSync(key, new Date(), new Date(Date.now() + 1000));
    try {
      const before = stack.log("rspamd").length;
      await submit(ALICE, BOB, "unsigned", source(44));
      await stack.until("rspamd's log of the message", () => stack.log("rspamd").slice(before).includes("rspamd_task_write_log"), 30000);
      const dkim = events("rspamd", stack.log("rspamd").slice(before)).filter((e) => /dkim/i.test(e));
      expect(dkim.filter((e) => filterMatches(LOG_METRIC_FILTERS.dkimSigningErrors, e))).toEqual([
        expect.stringMatching(/^rspamd\[\d+\]: <\w+>; proxy; dkim_module_load_key_format: cannot load dkim key \S+: cannot map key file: .* Permission denied$/),
      ]);
    } finally {
      chmodSync(key, 0o640);
    }
  });

  test("a mailstack-failure line, as the real alert logs it into a real journal", async () => {
    const journal = await TestJournal.start();
    const work = mkdtempSync("/tmp/ms-alert-");
    try {
      // Postfix's sendmail would queue the postmaster's mail; this one takes it and drops it.
      writeFileSync(join(work, "sendmail"), "#!/bin/sh\ncat >/dev/null\n");
      chmodSync(join(work, "sendmail"), 0o755);
      // This machine has no /dev/log (systemd is not its init): logger is pointed at the socket
      // behind it, which the test's journald serves.
      mkdirSync(join(work, "bin"));
      writeFileSync(join(work, "bin", "logger"), '#!/bin/sh\nexec /usr/bin/logger -u /run/systemd/journal/dev-log "$@"\n');
      chmodSync(join(work, "bin", "logger"), 0o755);
      const settings = { ...hostSettings(stack.host), MAILSTACK_STATE: work, MAILSTACK_SENDMAIL: join(work, "sendmail"), PATH: `${join(work, "bin")}:/usr/bin:/bin` };
      const r = journal.exec("bash", [join(SCRIPTS, "mailstack-alert.sh"), "mailstack-backup.service"], { env: settings });
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
      const entry = journal.entries().find((e) => e.SYSLOG_IDENTIFIER === FAILURE_TAG)!;
      const event = logEventText(String(entry.SYSLOG_IDENTIFIER), String(entry._PID), String(entry.MESSAGE));
      expect(event).toMatch(/^mailstack-failure\[\d+\]: mailstack-backup\.service failed on mail\.example\.com$/);
      expect(filterMatches(LOG_METRIC_FILTERS.unitFailures, event)).toBe(true);
    } finally {
      journal.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });
});

describe("mailstack-metrics on the stack", () => {
  const cloudwatch = new FakeCloudWatch();
  const ssm = new FakeSsm();
  let work: string;
  beforeAll(async () => {
    await cloudwatch.start();
    await ssm.start();
    work = mkdtempSync("/tmp/ms-metrics-");
  });
  afterAll(async () => {
    await cloudwatch.stop();
    await ssm.stop();
    rmSync(work, { recursive: true, force: true });
  });

  // Run without blocking this process, whose event loop serves the stand-ins.
  async function report(state: Record<string, unknown>, backup: Record<string, unknown> | undefined): Promise<Record<string, any>> {
    const settings = hostSettings(stack.host);
    writeFileSync(join(work, "bundle-state.json"), JSON.stringify(state));
    rmSync(join(work, "backup-status.json"), { force: true });
    if (backup) writeFileSync(join(work, "backup-status.json"), JSON.stringify(backup));
    const env = {
      ...fakeAwsEnv(work, { AWS_DEFAULT_REGION: "us-east-1", PATH: "/usr/bin:/bin" }),
      ...settings,
      MAILSTACK_BUNDLE_STATE: join(work, "bundle-state.json"),
      MAILSTACK_BACKUP_STATUS: join(work, "backup-status.json"),
      MAILSTACK_BOOTSTRAP_DONE: join(work, "bootstrap-done"),
      // The stack has no volume of its own: its maildirs' file system stands in.
      MAILSTACK_DATA_MOUNT: stack.host.env.paths.vmail,
    };
    const r = await runAsync("/usr/bin/python3", [join(SCRIPTS, "mailstack-metrics.py"), "--cloudwatch-endpoint-url", cloudwatch.endpoint, "--ssm-endpoint-url", ssm.endpoint], { env });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    return JSON.parse(ssm.parameters.get(`${TEST_PARAMS.ssmPath}/${HOST_HEALTH_PARAMETER}`)!);
  }

  test("queue, backup age, certificate days and bundle, in CloudWatch and in the health document", async () => {
    // Delivery stopped: mail to a server that is down waits in the deferred queue.
    for (let i = 0; i < 3; i++) await submit(BOB, `later${i}@${DOWN_DOMAIN}`, `deferred ${i}`, source(45));
    await stack.until("three more deferrals", () => (stack.log("mail").match(/to=<later\d@down\.example>.*status=deferred/g) ?? []).length >= 3, 60000);
    const deferred = stack.queue().filter((q) => q.queue_name === "deferred").length;
    expect(deferred).toBeGreaterThanOrEqual(3);
    // The setup finished 10 hours ago; the last backup 30 hours ago, and one failed since.
    writeFileSync(join(work, "bootstrap-done"), "");
    utimesSync(join(work, "bootstrap-done"), new Date(Date.now() - 10 * 3600e3), new Date(Date.now() - 10 * 3600e3));
    const old = new Date(Date.now() - 30 * 3600e3).toISOString().replace(/\.\d{3}Z$/, "Z");
    const sha = "a".repeat(64);
    const health = await report({ current: sha, previous: null, refused: {}, reported: { running: sha, attempted: sha, result: "applied", reason: null } }, { ok: false, last_attempt: "2026-01-01T00:00:00Z", last_success: { time: old, snapshot_id: "abc" } });
    const certificate = runOk("openssl", ["x509", "-noout", "-enddate", "-in", stack.host.env.paths.tlsCert]).stdout.trim().replace(/^notAfter=/, "");
    const days = (Date.parse(certificate) - Date.now()) / 86400e3;

    expect(health).toMatchObject({ host: "mail.example.com", queueDeferred: deferred, queueActive: 0, bundleApplied: 1, bundle: sha, lastBackup: old, certificateExpires: new Date(Date.parse(certificate)).toISOString().replace(/\.\d{3}Z$/, "Z") });
    expect(health.hoursSinceBackup).toBeCloseTo(30, 1);
    expect(health.certificateDaysLeft).toBeCloseTo(days, 1);
    expect(health.dataVolumeUsed).toBeGreaterThan(0);
    expect(Date.now() - Date.parse(health.at)).toBeLessThan(60000);
    const latest = cloudwatch.latest();
    expect(Object.keys(latest).sort()).toEqual(Object.values(HOST_METRICS).map((m) => m.name).sort());
    for (const [key, metric] of Object.entries(HOST_METRICS)) {
      expect(latest[metric.name]).toEqual({ namespace: METRIC_NAMESPACE, name: metric.name, dimensions: { [METRIC_DIMENSION]: "mail.example.com" }, value: health[key], unit: metric.unit });
    }

    // No backup yet: hours since the setup finished. A bundle refused: 0.
    const refused = await report({ current: sha, previous: null, refused: { ["b".repeat(64)]: "dovecot: …" }, reported: { running: sha, attempted: "b".repeat(64), result: "refused", reason: "dovecot: …" } }, undefined);
    expect(refused.hoursSinceBackup).toBeCloseTo(10, 1);
    expect(refused).toMatchObject({ lastBackup: null, bundleApplied: 0 });
    expect(cloudwatch.latest()[HOST_METRICS.bundleApplied.name].value).toBe(0);
  });
});
