/**
 * The rendered mailstack-backup, run as its unit runs it with the rendered settings, against a
 * stand-in for restic that logs every call: what reaches restic from the keep file, the one
 * runtime file that turns into its options. (test/e2e/backup.test.ts runs the real restic.)
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "@mailstack/core";
import { minimalConfig } from "../support/fixtures";
import { hostSettings, type RenderedHost, renderHost, requireTools, runAsync, type RunResult, TOOL_PATH } from "../support/tools";

requireTools("bash");

describe("mailstack-backup passes restic only the keep options it can parse", () => {
  let host: RenderedHost;
  let settings: Record<string, string>;
  const bin = () => join(host.root, "test-bin");
  const log = () => join(host.root, "restic.log");

  beforeAll(() => {
    host = renderHost(parseConfig(minimalConfig()), { tls: false });
    settings = hostSettings(host);
    mkdirSync(bin());
    // Each call on a line, its arguments separated by "|"; a backup answers with a summary.
    writeFileSync(
      join(bin(), "restic"),
      `#!/bin/bash
(IFS='|'; printf '%s\\n' "$*") >> ${log()}
if [ "$1" = backup ]; then echo '{"message_type":"summary","files_new":1,"snapshot_id":"0123abcd"}'; fi
exit 0
`,
      { mode: 0o755 },
    );
  });
  afterAll(() => host?.cleanup());

  /** Writes the keep file and runs the backup as its unit does; restic's calls since. */
  const backup = async (keep: string): Promise<RunResult & { calls: string[][] }> => {
    mkdirSync(join(settings.MAILSTACK_BACKUP_KEEP_FILE, ".."), { recursive: true });
    writeFileSync(settings.MAILSTACK_BACKUP_KEEP_FILE, keep);
    writeFileSync(log(), "");
    const unit = readFileSync(host.path("/etc/systemd/system/mailstack-backup.service"), "utf8");
    const execStart = unit.match(/^ExecStart=(.*)$/m)![1];
    const r = await runAsync("bash", [execStart], { env: { ...settings, HOME: host.root, PATH: `${bin()}:${TOOL_PATH}` } });
    const calls = readFileSync(log(), "utf8").split("\n").filter(Boolean).map((l) => l.split("|"));
    return { ...r, calls };
  };
  const status = () => JSON.parse(readFileSync(settings.MAILSTACK_BACKUP_STATUS, "utf8")) as { ok: boolean };

  test("the keep file the core renders: restic forget gets each option as one argument, and no other", async () => {
    const r = await backup("--keep-daily=7\n--keep-weekly=4\n--keep-monthly=12\n");
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    const paths = settings.MAILSTACK_BACKUP_PATHS.split(" ");
    expect(r.calls).toEqual([["cat", "config"], ["backup", "--json", "--quiet", "--", ...paths], ["forget", "--prune", "--quiet", "--keep-daily=7", "--keep-weekly=4", "--keep-monthly=12", "--"]]);
    expect(status().ok).toBe(true);
  });

  test("every period restic knows, and a last line without its newline", async () => {
    const r = await backup("--keep-last=1\n--keep-hourly=2\n--keep-daily=3\n--keep-weekly=4\n--keep-monthly=5\n--keep-yearly=6");
    expect(r.status).toBe(0);
    expect(r.calls.at(-1)).toEqual(["forget", "--prune", "--quiet", "--keep-last=1", "--keep-hourly=2", "--keep-daily=3", "--keep-weekly=4", "--keep-monthly=5", "--keep-yearly=6", "--"]);
  });

  test.each([
    ["an option that runs a program", "--keep-daily=7\n--option=rclone.program=/bin/sh\n", 2],
    ["a second option on a keep line", "--keep-daily=7 --keep-tag=x\n", 1],
    ["an option restic would take after the keep ones", "--keep-daily=7\n--repo=/tmp/elsewhere\n", 2],
    ["a period restic does not keep by", "--keep-within=1y\n", 1],
    ["a keep line with a carriage return", "--keep-daily=7\r\n", 1],
    ["a blank line", "--keep-daily=7\n\n", 2],
  ])("%s: restic is not run, and the run fails with one line naming the line", async (_label, keep, line) => {
    const r = await backup(keep);
    expect(r.status).toBe(1);
    expect(r.calls).toEqual([]);
    expect(r.stderr.split("\n").filter(Boolean)).toEqual([
      `mailstack-backup: ${settings.MAILSTACK_BACKUP_KEEP_FILE} line ${line} is not --keep-(last|hourly|daily|weekly|monthly|yearly)=N`,
      "mailstack-backup: FAILED (exit 1), no new snapshot; restic said why above",
    ]);
    expect(status().ok).toBe(false);
    expect(existsSync(settings.MAILSTACK_BACKUP_STATUS)).toBe(true);
  });
});
