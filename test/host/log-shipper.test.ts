/**
 * The real mailstack-logs (Debian's python3, python3-systemd and boto3) reading a real journal
 * (systemd-journald of the test's own, test/support/journal.ts; journal files written by
 * systemd-journal-remote for entries of other times and units) and shipping to a CloudWatch
 * Logs stand-in on 127.0.0.1 that enforces PutLogEvents' limits.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FAILURE_TAG, logEventText } from "@mailstack/core";
import { fakeAwsEnv, FakeLogs } from "../support/fake-aws";
import { TestJournal } from "../support/journal";
import { sleep } from "../support/stack";
import { requireRoot, requireTools, run, runOk } from "../support/tools";

requireTools("python3", "boto3", "python3-systemd", "systemd-journald", "systemd-journal-remote", "journalctl", "unshare", "nsenter");
requireRoot("the journal runs in a mount namespace of its own");

const SCRIPT = join(__dirname, "..", "..", "packages", "core", "scripts", "mailstack-logs.py");
const JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote";
const GROUP = "/mailstack/test/mail";
const STREAM = "i-0123456789abcdef0";
const UNIT = "mailstack-logs.service";

let logs: FakeLogs;
let journal: TestJournal;
let work: string;

beforeAll(async () => {
  logs = new FakeLogs();
  await logs.start();
  logs.groups.add(GROUP);
  journal = await TestJournal.start();
  work = mkdtempSync("/tmp/ms-logs-");
  // The alert, as the shipper runs it after a long outage: it records its arguments.
  writeFileSync(join(work, "alert"), `#!/bin/sh\necho "$@" >>${join(work, "alerts")}\n`);
  chmodSync(join(work, "alert"), 0o755);
});

afterAll(async () => {
  journal?.stop();
  await logs?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const shipped = (stream = STREAM) => logs.events(GROUP, stream).map((e) => e.message);

async function until(what: string, check: () => boolean, seconds = 60): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** A running shipper and what it printed. */
interface Shipper {
  child: ChildProcess;
  output: () => string;
  stop: () => Promise<void>;
}

function startShipper(options: { cursor: string; stream?: string; directory?: string; alertAfter?: number; units?: string }): Shipper {
  const args = [
    SCRIPT,
    "--group", GROUP,
    "--cursor", options.cursor,
    "--units", options.units ?? "postfix@-.service mailstack-sync.service",
    "--failure-tag", FAILURE_TAG,
    "--alert-command", join(work, "alert"),
    "--unit", UNIT,
    "--alert-after", String(options.alertAfter ?? 3600),
    "--stream", options.stream ?? STREAM,
    "--endpoint-url", logs.endpoint,
    "--idle-seconds", "1",
    ...(options.directory ? ["--directory", options.directory] : []),
  ];
  const env = { ...fakeAwsEnv(work, { AWS_DEFAULT_REGION: "us-east-1" }), PATH: "/usr/bin:/bin" };
  const child = options.directory ? spawn("/usr/bin/python3", args, { env, stdio: ["ignore", "pipe", "pipe"] }) : journal.spawn("/usr/bin/python3", args, env);
  let output = "";
  child.stdout!.on("data", (c: Buffer) => (output += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    child,
    output: () => output,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** Entries of the mail facility from `identifier`, numbered. */
const mail = (identifier: string, texts: string[]) => texts.map((MESSAGE) => ({ MESSAGE, SYSLOG_IDENTIFIER: identifier, SYSLOG_FACILITY: "2" }));

describe("the event format", () => {
  test("the script formats an entry as the core's logEventText does", () => {
    const cases: [string, string | number | undefined, string][] = [
      ["postfix/smtpd", 4242, "warning: unknown[198.51.100.7]: SASL PLAIN authentication failed: UGFzc3dvcmQ6"],
      ["dovecot", "17", "imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<a@example.com>"],
      ["mailstack-failure", undefined, "mailstack-backup.service failed on mail.example.com"],
      ["kernel", "", "no pid here"],
      ["rspamd", 9, "multi\nline: ünïcödé ✓ [x]: y"],
    ];
    const script = [
      "import importlib.util, json, sys",
      `spec = importlib.util.spec_from_file_location("shipper", ${JSON.stringify(SCRIPT)})`,
      "shipper = importlib.util.module_from_spec(spec); spec.loader.exec_module(shipper)",
      "cases = json.load(sys.stdin)",
      "texts = [shipper.event_text(i, p, m) for i, p, m in cases]",
      // As the journal reader hands entries over: converted fields, bytes where they do not decode, repeated fields as lists.
      "entries = [",
      "  {'SYSLOG_IDENTIFIER': 'postfix/smtp', '_PID': 12, 'SYSLOG_PID': 99, 'MESSAGE': 'to=<b@example.org>, status=sent', '__REALTIME_TIMESTAMP': 1700000000123456},",
      "  {'_COMM': 'sshd', 'SYSLOG_PID': 7, 'MESSAGE': b'caf\\xe9', '__REALTIME_TIMESTAMP': 1700000000000999},",
      "  {'SYSLOG_IDENTIFIER': ['postfix/qmgr', 'other'], 'MESSAGE': 'x' * 300000, '__REALTIME_TIMESTAMP': 1},",
      "]",
      "print(json.dumps({'texts': texts, 'events': [shipper.event_of(e) for e in entries]}))",
    ].join("\n");
    const out = JSON.parse(runOk("/usr/bin/python3", ["-c", script], { input: JSON.stringify(cases) }).stdout) as { texts: string[]; events: { timestamp: number; message: string }[] };
    expect(out.texts).toEqual(cases.map(([i, p, m]) => logEventText(i, p, m)));
    expect(out.events[0]).toEqual({ timestamp: 1700000000123, message: logEventText("postfix/smtp", 12, "to=<b@example.org>, status=sent") });
    expect(out.events[1]).toEqual({ timestamp: 1700000000000, message: logEventText("sshd", 7, "caf\ufffd") });
    // Cut to CloudWatch's largest event, 256 KiB with its 26 bytes of overhead.
    expect(out.events[2].message.startsWith(logEventText("postfix/qmgr", undefined, "xxx"))).toBe(true);
    expect(Buffer.byteLength(out.events[2].message)).toBe(262144 - 26);
  });
});

describe("shipping a running journal", () => {
  const cursor = () => join(work, "cursor");

  test("mail, auth and the failure tag's lines arrive in order and formatted, in a stream it creates; other lines stay", async () => {
    journal.send([
      ...mail("postfix/smtpd", ["connect from unknown[198.51.100.1]", "disconnect from unknown[198.51.100.1]"]),
      { MESSAGE: "Accepted publickey for ubuntu", SYSLOG_IDENTIFIER: "sshd", SYSLOG_FACILITY: "4" },
      { MESSAGE: "pam_unix(sudo:session): session opened", SYSLOG_IDENTIFIER: "sudo", SYSLOG_FACILITY: "10" },
      { MESSAGE: "a user-facility line, not for CloudWatch", SYSLOG_IDENTIFIER: "cron", SYSLOG_FACILITY: "1" },
      { MESSAGE: "mailstack-backup.service failed on mail.example.com", SYSLOG_IDENTIFIER: FAILURE_TAG, SYSLOG_FACILITY: "3" },
    ]);
    const shipper = startShipper({ cursor: cursor() });
    try {
      await until("five events", () => shipped().length >= 5);
      await sleep(2000);
      const pids = Object.fromEntries(journal.entries().map((e) => [String(e.MESSAGE), String(e._PID)]));
      expect(shipped()).toEqual(
        [
          ["postfix/smtpd", "connect from unknown[198.51.100.1]"],
          ["postfix/smtpd", "disconnect from unknown[198.51.100.1]"],
          ["sshd", "Accepted publickey for ubuntu"],
          ["sudo", "pam_unix(sudo:session): session opened"],
          [FAILURE_TAG, "mailstack-backup.service failed on mail.example.com"],
        ].map(([identifier, text]) => logEventText(identifier, pids[text], text)),
      );
      expect(shipped().some((m) => m.includes("not for CloudWatch"))).toBe(false);
      expect(logs.targets.slice(0, 3)).toEqual(["Logs_20140328.PutLogEvents", "Logs_20140328.CreateLogStream", "Logs_20140328.PutLogEvents"]);
      expect(logs.violations).toEqual([]);
      // The cursor is the last shipped entry's.
      expect(readFileSync(cursor(), "utf8").trim()).toMatch(/^s=[0-9a-f]+;i=[0-9a-f]+;/);
    } finally {
      await shipper.stop();
    }
  });

  test("a restart resumes after the saved cursor: every line once, none twice", async () => {
    const before = shipped().length;
    journal.send(mail("postfix/qmgr", ["while stopped 1", "while stopped 2"]));
    const shipper = startShipper({ cursor: cursor() });
    try {
      await until("the two lines", () => shipped().length >= before + 2);
      journal.send(mail("postfix/qmgr", ["while running"]));
      await until("the third", () => shipped().length >= before + 3);
      await sleep(2000);
      expect(shipped().slice(before).map((m) => m.replace(/^postfix\/qmgr\[\d+\]: /, ""))).toEqual(["while stopped 1", "while stopped 2", "while running"]);
      expect(new Set(shipped()).size).toBe(shipped().length);
    } finally {
      await shipper.stop();
    }
  });

  test("through an outage of CloudWatch: said once, the postmaster alerted once, everything delivered once it is back", async () => {
    const before = shipped().length;
    const shipper = startShipper({ cursor: cursor(), alertAfter: 3 });
    try {
      await sleep(1500);
      logs.down = true;
      journal.send(mail("postfix/smtp", Array.from({ length: 20 }, (_, i) => `during the outage ${i}`)));
      // Retries with a growing delay (1, 2, 4, 8 s…), each of them botocore's three attempts,
      // and runs the alert once the outage is 3 s old.
      await until("the alert", () => existsSync(join(work, "alerts")), 30);
      expect(shipped().length).toBe(before);
      logs.down = false;
      await until("the held-back lines", () => shipped().length >= before + 20, 60);
      await sleep(2000);
      expect(shipped().slice(before).map((m) => m.replace(/^postfix\/smtp\[\d+\]: /, ""))).toEqual(Array.from({ length: 20 }, (_, i) => `during the outage ${i}`));
      const out = shipper.output();
      expect(out.match(/cannot ship the journal to CloudWatch Logs/g)).toHaveLength(1);
      expect(out.match(/shipping again after \d+ s; nothing of the journal was lost/g)).toHaveLength(1);
      expect(readFileSync(join(work, "alerts"), "utf8")).toBe(`${UNIT}\n`);
      expect(logs.violations).toEqual([]);
    } finally {
      await shipper.stop();
    }
  });

  test("a backlog is split within PutLogEvents' limits: 10,000 events and 1 MiB", async () => {
    const before = logs.puts.length;
    const shippedBefore = shipped().length;
    journal.send(mail("postfix/cleanup", Array.from({ length: 12000 }, (_, i) => `small ${i}`)));
    journal.send(mail("postfix/cleanup", Array.from({ length: 300 }, (_, i) => `large ${i} ${"y".repeat(8000)}`)));
    const shipper = startShipper({ cursor: cursor() });
    try {
      await until("the backlog", () => shipped().length >= shippedBefore + 12300, 120);
      await sleep(2000);
      const puts = logs.puts.slice(before);
      expect(logs.violations).toEqual([]);
      expect(Math.max(...puts.map((p) => p.events))).toBe(10000);
      expect(puts.filter((p) => p.bytes > 1000000).length).toBeGreaterThanOrEqual(2);
      expect(Math.max(...puts.map((p) => p.bytes))).toBeLessThanOrEqual(1048576);
      const messages = shipped().slice(shippedBefore).map((m) => m.replace(/^postfix\/cleanup\[\d+\]: /, "").split(" ").slice(0, 2).join(" "));
      expect(messages).toEqual([...Array.from({ length: 12000 }, (_, i) => `small ${i}`), ...Array.from({ length: 300 }, (_, i) => `large ${i}`)]);
    } finally {
      await shipper.stop();
    }
  });
});

describe("journal files of other times and units", () => {
  /** Writes entries with the given fields into a journal file, as journald would have. */
  function writeJournal(dir: string, entries: Record<string, string | number>[]): void {
    const exported = entries
      .map((e, i) => Object.entries({ __MONOTONIC_TIMESTAMP: i + 1, _BOOT_ID: "0123456789abcdef0123456789abcdef", ...e }).map(([k, v]) => `${k}=${v}\n`).join("") + "\n")
      .join("");
    runOk(JOURNAL_REMOTE, ["-o", join(dir, "remote.journal"), "-"], { input: exported });
  }

  test("units' own lines go, entries older than 14 days are skipped, and no batch spans more than 24 hours", async () => {
    const dir = mkdtempSync("/tmp/ms-journal-files-");
    const cursor = join(work, "files-cursor");
    const hour = 3600 * 1000 * 1000;
    const now = Date.now() * 1000;
    const at = (hoursAgo: number) => Math.round(now - hoursAgo * hour);
    try {
      writeJournal(dir, [
        { __REALTIME_TIMESTAMP: at(15 * 24), SYSLOG_IDENTIFIER: "postfix/smtpd", _PID: 1, SYSLOG_FACILITY: 2, MESSAGE: "fifteen days ago" },
        { __REALTIME_TIMESTAMP: at(72), SYSLOG_IDENTIFIER: "postfix/smtpd", _PID: 2, SYSLOG_FACILITY: 2, MESSAGE: "three days ago" },
        { __REALTIME_TIMESTAMP: at(60), SYSLOG_IDENTIFIER: "mailstack-sync", _PID: 3, _SYSTEMD_UNIT: "mailstack-sync.service", MESSAGE: "mailstack-sync: host bundle applied" },
        { __REALTIME_TIMESTAMP: at(47), SYSLOG_IDENTIFIER: "postfix", _PID: 4, _SYSTEMD_UNIT: "postfix@-.service", MESSAGE: "fatal: a unit's own line" },
        { __REALTIME_TIMESTAMP: at(46), SYSLOG_IDENTIFIER: "nginx", _PID: 5, _SYSTEMD_UNIT: "nginx.service", MESSAGE: "a unit not listed" },
        { __REALTIME_TIMESTAMP: at(1), SYSLOG_IDENTIFIER: "dovecot", _PID: 6, SYSLOG_FACILITY: 2, MESSAGE: "an hour ago" },
      ]);
      const shipper = startShipper({ cursor, stream: "i-files", directory: dir });
      try {
        await until("four events", () => shipped("i-files").length >= 4);
        await sleep(2000);
      } finally {
        await shipper.stop();
      }
      expect(shipped("i-files")).toEqual([
        logEventText("postfix/smtpd", 2, "three days ago"),
        logEventText("mailstack-sync", 3, "mailstack-sync: host bundle applied"),
        logEventText("postfix", 4, "fatal: a unit's own line"),
        logEventText("dovecot", 6, "an hour ago"),
      ]);
      expect(logs.violations).toEqual([]);
      // 72 and 60 hours ago in one batch; 47 (more than a day after the first) starts the next,
      // and the last, 46 hours after that one, a third.
      expect(logs.puts.filter((p) => p.stream === "i-files").map((p) => p.events)).toEqual([2, 1, 1]);
      expect(existsSync(cursor)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test("the journal is the test's own: journald wrote the entries, not a file of this machine", () => {
  expect(run("nsenter", ["-t", String(journal.pid), "-m", "--", "journalctl", "--header", "-q"]).stdout).toMatch(/File path: \/run\/log\/journal\//);
});
