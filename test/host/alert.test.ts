/**
 * The rendered mailstack-alert, run as the template unit a failed unit's OnFailure= starts runs
 * it (its ExecStart with %i the failed unit's name, the rendered settings, the MONITOR_*
 * variables systemd sets), with stand-ins for journalctl, logger and sendmail that log what
 * they are given: one line under the fixed tag for monitoring, and a mail to root.
 */
import { mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FAILURE_TAG, HOST_SCRIPTS, parseConfig, SENDMAIL } from "@mailstack/core";
import { minimalConfig } from "../support/fixtures";
import { hostSettings, type RenderedHost, renderHost, requireTools, runAsync, type RunResult, TOOL_PATH } from "../support/tools";

requireTools("bash");

describe("a failed unit is told to the postmaster and counted in the journal", () => {
  let host: RenderedHost;
  let settings: Record<string, string>;
  let execStart: string;
  const tools = () => join(host.root, "test-tools");
  const file = (name: string) => join(tools(), name);
  const read = (name: string) => readFileSync(file(name), "utf8");

  beforeAll(() => {
    host = renderHost(parseConfig(minimalConfig()), { tls: false });
    settings = hostSettings(host);
    const unit = readFileSync(host.path(`/etc/systemd/system/${HOST_SCRIPTS.alert}@.service`), "utf8");
    execStart = unit.match(/^ExecStart=(.*)$/m)![1];
    mkdirSync(tools());
    const logArgs = (name: string) => `(IFS='|'; printf '%s\\n' "$*") >> ${file(`${name}.args`)}\n`;
    // 60 lines of the unit's journal, of which the mail must carry the last 50 (journalctl's --lines).
    writeFileSync(file("journalctl"), `#!/bin/bash\n${logArgs("journalctl")}for i in $(seq 11 60); do echo "2026-01-01T03:00:00+0000 mail mailstack-backup[42]: restic line $i"; done\n`, { mode: 0o755 });
    writeFileSync(file("logger"), `#!/bin/bash\n${logArgs("logger")}`, { mode: 0o755 });
    writeFileSync(file("sendmail"), `#!/bin/bash\n${logArgs("sendmail")}cat > ${file("mail")}\nexit "$(cat ${file("sendmail-status")} 2>/dev/null || echo 0)"\n`, { mode: 0o755 });
  });
  afterAll(() => host?.cleanup());
  // Each test's failures are news: no mail of an earlier test holds one back.
  beforeEach(() => rmSync(join(settings.MAILSTACK_STATE, "alerted"), { recursive: true, force: true }));

  /** Runs the unit's ExecStart for a failed unit, as systemd does; what each stand-in was given. */
  const alert = async (failed: string, extra: Record<string, string> = {}): Promise<RunResult & { logger: string[][]; sendmail: string[][]; journalctl: string[][] }> => {
    for (const name of ["logger.args", "sendmail.args", "journalctl.args", "mail"]) writeFileSync(file(name), "");
    const [command, ...args] = execStart.split(" ").map((word) => word.replace("%i", failed));
    const r = await runAsync("bash", [command, ...args], {
      env: { ...settings, MAILSTACK_SENDMAIL: file("sendmail"), MONITOR_SERVICE_RESULT: "exit-code", MONITOR_EXIT_STATUS: "1", PATH: `${tools()}:${TOOL_PATH}`, ...extra },
    });
    const calls = (name: string) => read(`${name}.args`).split("\n").filter(Boolean).map((l) => l.split("|"));
    return { ...r, logger: calls("logger"), sendmail: calls("sendmail"), journalctl: calls("journalctl") };
  };

  test("the settings name the tag and /usr/sbin/sendmail, and the unit runs the installed script with the failed unit's name", () => {
    expect(settings.MAILSTACK_FAILURE_TAG).toBe(FAILURE_TAG);
    expect(FAILURE_TAG).toBe("mailstack-failure");
    expect(settings.MAILSTACK_SENDMAIL).toBe(SENDMAIL);
    expect(SENDMAIL).toBe("/usr/sbin/sendmail");
    expect(execStart).toBe(`${host.env.paths.sbin}/${HOST_SCRIPTS.alert} %i`);
  });

  test("a failed backup: one error line under the fixed tag, and a mail to root with the unit's last 50 journal lines", async () => {
    const r = await alert("mailstack-backup.service");
    expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: "", stderr: "" });
    expect(r.logger).toEqual([["-t", "mailstack-failure", "-p", "daemon.err", "--", "mailstack-backup.service failed on mail.example.com (exit-code, status 1)"]]);
    // Postfix's sendmail, the recipient after "--": mail for root reaches the postmaster here.
    expect(r.sendmail).toEqual([["-i", "--", "root"]]);
    expect(r.journalctl).toEqual([["--no-pager", "--quiet", "--output=short-iso", "--lines=50", "--unit=mailstack-backup.service"]]);
    const mail = read("mail");
    const [headers, body] = [mail.slice(0, mail.indexOf("\n\n")), mail.slice(mail.indexOf("\n\n") + 2)];
    expect(headers.split("\n")).toEqual([
      "To: root",
      "Subject: mailstack-backup.service failed on mail.example.com",
      "Auto-Submitted: auto-generated",
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=UTF-8",
      "Content-Transfer-Encoding: 8bit",
    ]);
    expect(body).toMatch(/^mailstack-backup\.service failed on mail\.example\.com at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(exit-code, status 1\)\.\n\nIts last 50 journal lines:\n\n/);
    const journal = body.split("\n").filter((l) => l.includes("restic line"));
    expect(journal).toHaveLength(50);
    expect(journal.at(-1)).toBe("2026-01-01T03:00:00+0000 mail mailstack-backup[42]: restic line 60");
  });

  test("without systemd's MONITOR_* variables (before systemd 251) the line and the mail say less, and still go out", async () => {
    const r = await alert("mailstack-backup.service", { MONITOR_SERVICE_RESULT: "" });
    expect(r.status).toBe(0);
    expect(r.logger).toEqual([["-t", "mailstack-failure", "-p", "daemon.err", "--", "mailstack-backup.service failed on mail.example.com"]]);
    expect(r.sendmail).toEqual([["-i", "--", "root"]]);
  });

  test("sendmail failing fails the unit (systemctl --failed shows it); the journal line is written first, and the next failure mails again", async () => {
    writeFileSync(file("sendmail-status"), "75");
    try {
      const r = await alert("mailstack-certificate.service");
      expect(r.status).toBe(75);
      expect(r.logger).toHaveLength(1);
    } finally {
      writeFileSync(file("sendmail-status"), "0");
    }
    expect((await alert("mailstack-certificate.service")).sendmail).toEqual([["-i", "--", "root"]]);
  });

  test("a unit failing again within a day is logged each time and mailed once; after a day it is mailed again", async () => {
    const unit = "mailstack-sync.service";
    expect((await alert(unit)).sendmail).toHaveLength(1);
    const again = await alert(unit);
    expect({ status: again.status, stdout: again.stdout, sendmail: again.sendmail }).toEqual({ status: 0, stdout: `${unit}: the postmaster was told less than a day ago; not mailed again\n`, sendmail: [] });
    expect(again.logger).toEqual([["-t", "mailstack-failure", "-p", "daemon.err", "--", `${unit} failed on mail.example.com (exit-code, status 1)`]]);
    // Another unit's failure is its own news.
    expect((await alert("mailstack-backup-other.service")).sendmail).toHaveLength(1);
    const stamp = join(settings.MAILSTACK_STATE, "alerted", unit);
    const dayAndMinuteAgo = new Date(Date.now() - (24 * 60 + 1) * 60000);
    utimesSync(stamp, dayAndMinuteAgo, dayAndMinuteAgo);
    expect((await alert(unit)).sendmail).toHaveLength(1);
  });

  test.each([
    ["a header added through the unit name", "x.service\nBcc: someone@example.net"],
    ["a name with a space", "x service"],
    ["no name", ""],
    ["an option", "--help"],
    ["a command", "x.service;id"],
  ])("%s: refused with the usage line, nothing logged or mailed", async (_label, failed) => {
    const r = await alert(failed);
    expect({ status: r.status, stderr: r.stderr, logger: r.logger, sendmail: r.sendmail }).toEqual({ status: 2, stderr: "# usage: mailstack-alert UNIT\n", logger: [], sendmail: [] });
  });
});
