/**
 * A real systemd-journald of a test's own, on a machine whose PID 1 is not systemd: Debian's
 * journald runs in a private mount namespace where tmpfs hides the machine's journal sockets
 * and files, so the clients run in that namespace (`exec`) write to it and read only it. Its
 * settings lift the rate limit (the tests write thousands of entries at once) and keep the
 * journal in /run.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sleep } from "./stack";
import { run, runAsync, type RunResult } from "./tools";

export const JOURNALD = "/lib/systemd/systemd-journald";

export class TestJournal {
  private constructor(
    private readonly daemon: ChildProcess,
    private readonly dir: string,
  ) {}

  static async start(): Promise<TestJournal> {
    const dir = mkdtempSync("/tmp/ms-journal-");
    writeFileSync(join(dir, "journald.conf"), "[Journal]\nStorage=volatile\nRateLimitIntervalSec=0\nRateLimitBurst=0\nForwardToSyslog=no\nForwardToWall=no\n");
    const setup = [
      "set -e",
      "mount -t tmpfs tmpfs /run/systemd/journal",
      "mount -t tmpfs tmpfs /run/log",
      "mount -t tmpfs tmpfs /var/log/journal",
      `mount --bind ${join(dir, "journald.conf")} /etc/systemd/journald.conf`,
      `exec ${JOURNALD}`,
    ].join("\n");
    for (const d of ["/run/systemd/journal", "/run/log", "/var/log/journal"]) run("mkdir", ["-p", d]);
    const daemon = spawn("unshare", ["--mount", "--propagation", "private", "sh", "-c", setup], { stdio: ["ignore", "ignore", "pipe"] });
    const journal = new TestJournal(daemon, dir);
    for (let i = 0; i < 100; i++) {
      if (journal.exec("test", ["-S", "/run/systemd/journal/socket"]).status === 0) return journal;
      if (daemon.exitCode !== null) break;
      await sleep(100);
    }
    daemon.kill("SIGKILL");
    throw new Error(`systemd-journald did not start (${daemon.exitCode})`);
  }

  /** The pid whose mount namespace the journal lives in. */
  get pid(): number {
    return this.daemon.pid!;
  }

  /** Runs a command in the journal's namespace. */
  exec(command: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): RunResult {
    return run("nsenter", ["-t", String(this.pid), "-m", "--", command, ...args], options);
  }

  execAsync(command: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
    return runAsync("nsenter", ["-t", String(this.pid), "-m", "--", command, ...args], options);
  }

  /** Spawns a long-running command in the journal's namespace. */
  spawn(command: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
    return spawn("nsenter", ["-t", String(this.pid), "-m", "--", command, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  }

  /**
   * Writes entries through the journal's native protocol (python3-systemd's journal.send), as
   * a daemon does: each a map of fields (MESSAGE, SYSLOG_IDENTIFIER, SYSLOG_FACILITY…).
   */
  send(entries: Record<string, string>[]): void {
    const r = this.exec("/usr/bin/python3", ["-c", "import json, sys\nfrom systemd import journal\nfor e in json.load(sys.stdin):\n    journal.send(**e)\n"], { input: JSON.stringify(entries) });
    if (r.status !== 0) throw new Error(`journal.send: ${r.stderr}`);
  }

  /** Every entry of the journal, as `journalctl -o json` gives them. */
  entries(): Record<string, unknown>[] {
    const r = this.exec("journalctl", ["--no-pager", "-o", "json"]);
    return r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  stop(): void {
    this.daemon.kill("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}
