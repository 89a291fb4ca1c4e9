/**
 * The host bundle as the real mailstack-sync.py (Debian's python3 and boto3) installs it: the
 * pointer from a fake SSM endpoint, the document from a fake S3 one, both served by this test
 * on 127.0.0.1. Checkers are real commands run in the script's overlay mount namespace; systemd
 * is a stand-in that logs what it is asked and fails for the units a test names.
 */
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { type FakeS3, type FakeSsm, fakeAws, fakeAwsEnv } from "../support/fake-aws";
import { requireRoot, requireTools, run, runAsync, type RunResult, tempRoot } from "../support/tools";

requireTools("python3", "boto3", "mount", "findmnt", "sievec");
requireRoot("the checks mount overlays in a mount namespace of their own");

const SCRIPT = join(__dirname, "..", "..", "packages", "core", "scripts", "mailstack-sync.py");
const PREFIX = "/mailstack/test/mail";
const BUCKET = "mailstack-bundles-test";
/** Where the manifest says the runtime files that are not keys are. */
const RUNTIME_OBJECT = { bucket: BUCKET, key: "host/mailstack/test/mail/runtime.json", endpoint: "https://s3.us-east-1.amazonaws.com" };
const STATUS = `${PREFIX}/status/host-bundle`;

// --- bundles ---------------------------------------------------------------------------------
interface BundleFile {
  path: string;
  content: string;
  mode?: string;
  reload?: string[];
  check?: string | null;
}

interface Bundle {
  sha: string;
  text: string;
  files: Required<BundleFile>[];
}

/** A bundle document as the stack renders it: files sorted by path, every field present. */
function makeBundle(checks: Record<string, string[]>, files: BundleFile[]): Bundle {
  const full = files
    .map((f) => ({ path: f.path, mode: f.mode ?? "0644", owner: "root:root", reload: f.reload ?? [], check: f.check ?? null, content: f.content }))
    .sort((a, b) => a.path.localeCompare(b.path));
  const text = JSON.stringify({ version: 1, checks, files: full });
  return { sha: sha256(text), text, files: full };
}

const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

// --- one host --------------------------------------------------------------------------------
interface Host {
  root: string;
  bundles: string;
  bundleState: string;
  /** The bundle's demo files, as the checker reads them. */
  app: string;
  /** Runs mailstack-sync: the repository's, or `script` (a copy on the host a bundle may replace). */
  sync(options?: { extra?: string[]; env?: Record<string, string>; ssm?: string; script?: string }): Promise<RunResult>;
  /** A bundle whose "demo" checker accepts /etc/demo/app.conf only if it starts with "valid" (and logs each run). */
  bundle(files: BundleFile[]): Bundle;
  /** systemctl's calls, is-active polls left out unless asked for. */
  calls(all?: boolean): string[];
  /** How often each checker ran. */
  checks(): string[];
  /** Units whose reload-or-restart fails, and units that are never active. */
  fail(reload: string[], inactive?: string[]): void;
  state(): { current: string | null; previous: string | null; refused: Record<string, string>; reported: unknown };
}

function newHost(ssm: FakeSsm, s3: FakeS3): Host {
  const root = tempRoot("ms-bundle");
  const tools = join(root, "test");
  const bundles = join(root, "var", "lib", "mailstack", "bundles");
  const bundleState = join(root, "var", "lib", "mailstack", "bundle-state.json");
  const log = join(tools, "systemctl.log");
  const checkLog = join(tools, "checks.log");
  const failReload = join(tools, "fail-reload");
  const failActive = join(tools, "fail-active");
  const systemctl = join(tools, "systemctl");
  const table = join(tools, "runtime-files.json");
  // A real host always has them: the checks mount an overlay on each top-level directory.
  for (const dir of [tools, join(root, "etc"), join(root, "usr")]) mkdirSync(dir, { recursive: true });
  writeFileSync(
    systemctl,
    `#!/bin/sh
printf '%s\\n' "$*" >> ${log}
for unit; do :; done
case "$1" in
  is-active) if grep -qxF -- "$unit" ${failActive} 2>/dev/null; then exit 3; fi ;;
  reload-or-restart|restart) if grep -qxF -- "$unit" ${failReload} 2>/dev/null; then echo "Job for $unit failed because the control process exited with error code." >&2; exit 1; fi ;;
esac
exit 0
`,
    { mode: 0o755 },
  );
  // The one runtime file these tests publish, with nothing to reload.
  writeFileSync(table, JSON.stringify({ version: 1, files: [{ name: "users", mode: "0640", owner: "root", group: "root", reload: [], key: false, grammar: "passwd-file" }] }));
  const app = join(root, "etc", "demo", "app.conf");
  const lines = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []);
  return {
    root,
    bundles,
    bundleState,
    app,
    sync: (options = {}) =>
      runAsync(
        "/usr/bin/python3",
        [
          options.script ?? SCRIPT,
          "--prefix", PREFIX,
          "--endpoint-url", options.ssm ?? ssm.endpoint,
          "--region", "us-east-1",
          "--dest", join(root, "etc", "mailstack"),
          "--state", join(root, "var", "lib", "mailstack", "sync-state.json"),
          "--bundles", bundles,
          "--bundle-state", bundleState,
          "--runtime-table", table,
          "--root", root,
          "--s3-endpoint-url", s3.endpoint,
          "--systemctl", systemctl,
          "--reload-command", `${systemctl} reload-or-restart`,
          "--settle-seconds", "1",
          "--no-chown",
          ...(options.extra ?? []),
        ],
        {
          env: fakeAwsEnv(root, options.env),
        },
      ),
    bundle: (files) =>
      makeBundle(
        {
          demo: ["sh", "-c", `echo demo >> ${checkLog}; grep -q '^valid' ${app} || { echo "demo: $(head -n 1 ${app}) is not valid" >&2; exit 1; }`],
          other: ["sh", "-c", `echo other >> ${checkLog}`],
        },
        files,
      ),
    calls: (all = false) => lines(log).filter((c) => all || !c.startsWith("is-active")),
    checks: () => lines(checkLog),
    fail: (reload, inactive = []) => {
      writeFileSync(failReload, reload.map((u) => `${u}\n`).join(""));
      writeFileSync(failActive, inactive.map((u) => `${u}\n`).join(""));
    },
    state: () => JSON.parse(readFileSync(bundleState, "utf8")),
  };
}

/** The host's own files (/etc, /usr): content, mode, inode and mtime, so a rewrite with the same bytes shows. */
function snapshot(host: Host): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir).sort()) {
      const path = join(dir, entry);
      const st = lstatSync(path);
      if (st.isDirectory()) walk(path);
      else out[path.slice(host.root.length)] = `${sha256(readFileSync(path))} ${(st.mode & 0o7777).toString(8)} ${st.ino} ${st.mtimeMs}`;
    }
  };
  for (const top of ["etc", "usr"]) walk(join(host.root, top));
  return out;
}

/** Every file of the bundle is on disk below the host's root with its content and mode. */
function expectInstalled(host: Host, b: Bundle) {
  for (const f of b.files) {
    const path = join(host.root, f.path);
    expect({ path: f.path, content: existsSync(path) ? readFileSync(path, "utf8") : null }).toEqual({ path: f.path, content: f.content });
    expect({ path: f.path, mode: (lstatSync(path).mode & 0o7777).toString(8).padStart(4, "0") }).toEqual({ path: f.path, mode: f.mode });
  }
}

/** No overlay of the checks is mounted anywhere, in this mount namespace. */
function expectNoOverlay(host: Host) {
  const mounts = run("findmnt", ["-rn", "-o", "SOURCE,TARGET"]).stdout;
  expect(mounts).not.toContain("mailstack-check");
  expect(mounts).not.toContain(host.root);
}

describe("mailstack-sync.py installing the host bundle", () => {
  const { ssm, s3 } = fakeAws();
  const hosts: Host[] = [];
  const host = () => {
    const h = newHost(ssm, s3);
    hosts.push(h);
    return h;
  };

  const keyOf = (sha: string) => `host/bundles/${sha}.json`;
  /** Uploads a bundle and points the host-bundle parameter at it, as a `pulumi up` does. */
  const publish = (b: Bundle, bytes: string = b.text) => {
    s3.objects.set(`/${BUCKET}/${keyOf(b.sha)}`, Buffer.from(bytes));
    pointAt(b.sha);
  };
  const pointAt = (sha: string) =>
    ssm.parameters.set(`${PREFIX}/host-bundle`, JSON.stringify({ bucket: BUCKET, key: keyOf(sha), sha256: sha, endpoint: "https://s3.us-east-1.amazonaws.com" }));
  const status = () => JSON.parse(ssm.parameters.get(STATUS) ?? "null");
  const downloads = () => s3.requests.length;

  afterAll(async () => {
    for (const h of hosts) await runAsync("rm", ["-rf", h.root]);
  });
  beforeEach(() => {
    ssm.parameters.clear();
    ssm.requests.length = 0;
    ssm.refusePut = false;
    s3.objects.clear();
    s3.requests.length = 0;
    // No runtime files: the runtime-file step has nothing to do, and says nothing.
    ssm.parameters.set(`${PREFIX}/manifest`, JSON.stringify({ version: 2, object: RUNTIME_OBJECT, files: [] }));
  });

  /** Two services, a timer and its unit file, a script: the first bundle of most tests. */
  const first = (h: Host) =>
    h.bundle([
      { path: "/etc/demo/app.conf", content: "valid 1\n", mode: "0640", reload: ["demo.service"], check: "demo" },
      { path: "/etc/demo/extra.conf", content: "extra 1\n", reload: ["demo.service"], check: "demo" },
      { path: "/etc/other/other.conf", content: "other 1\n", reload: ["other.service"], check: "other" },
      { path: "/etc/systemd/system/demo-job.timer", content: "[Timer]\nOnCalendar=daily\n", reload: ["demo-job.timer"] },
      { path: "/usr/local/sbin/demo-tool", content: "#!/bin/sh\necho 1\n", mode: "0755" },
    ]);
  /** `first` with app.conf changed and other.conf dropped. */
  const second = (h: Host, app = "valid 2\n") =>
    h.bundle([
      { path: "/etc/demo/app.conf", content: app, mode: "0640", reload: ["demo.service"], check: "demo" },
      { path: "/etc/demo/extra.conf", content: "extra 1\n", reload: ["demo.service"], check: "demo" },
      { path: "/etc/systemd/system/demo-job.timer", content: "[Timer]\nOnCalendar=daily\n", reload: ["demo-job.timer"] },
      { path: "/usr/local/sbin/demo-tool", content: "#!/bin/sh\necho 1\n", mode: "0755" },
    ]);

  /** A host running `first`, its calls and checks logged so far. */
  async function running(h: Host): Promise<Bundle> {
    const b = first(h);
    publish(b);
    const r = await h.sync();
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    return b;
  }

  test("a first bundle is checked through the overlay, installed with its modes, and reloads the units of its files", async () => {
    const h = host();
    const b = first(h);
    publish(b);
    const r = await h.sync();
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    expect(r.stdout.trim().split("\n")).toEqual([
      "mailstack-sync: enable demo-job.timer",
      "mailstack-sync: restart demo-job.timer",
      "mailstack-sync: reload-or-restart demo.service",
      "mailstack-sync: reload-or-restart other.service",
      expect.stringMatching(new RegExp(`^mailstack-sync: host bundle ${b.sha} applied: updated /etc/demo/app.conf, `)),
    ]);
    expectInstalled(h, b);
    // Each checker once, though two files name "demo"; "demo" passing proves it read the
    // staged app.conf, which was not on disk yet.
    expect(h.checks()).toEqual(["demo", "other"]);
    expectNoOverlay(h);
    // A unit file changed: systemd reads it again first; the timer is enabled (so that it runs
    // after a reboot too) and restarted, not reloaded.
    expect(h.calls()).toEqual(["daemon-reload", "enable demo-job.timer", "restart demo-job.timer", "reload-or-restart demo.service", "reload-or-restart other.service"]);
    expect(h.calls(true).filter((c) => c.startsWith("is-active")).sort()).toEqual(["is-active --quiet demo-job.timer", "is-active --quiet demo.service", "is-active --quiet other.service"]);
    expect(readdirSync(h.bundles)).toEqual([`${b.sha}.json`]);
    expect(readFileSync(join(h.bundles, `${b.sha}.json`), "utf8")).toBe(b.text);
    expect(h.state()).toMatchObject({ current: b.sha, previous: null, refused: {} });
    expect(s3.requests.map((r) => r.path)).toEqual([`/${BUCKET}/${keyOf(b.sha)}`]);
    expect(status()).toEqual({ running: b.sha, attempted: b.sha, result: "applied", reason: null, at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/) });
  });

  test("the same pointer again: no download, no check, no reload, no report, nothing printed", async () => {
    const h = host();
    await running(h);
    const before = snapshot(h);
    const calls = h.calls(true).length;
    const [gets, puts] = [downloads(), ssm.puts().length];
    const r = await h.sync();
    expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: "", stderr: "" });
    expect(snapshot(h)).toEqual(before);
    expect(h.calls(true).length).toBe(calls);
    expect(h.checks()).toEqual(["demo", "other"]);
    expect([downloads(), ssm.puts().length]).toEqual([gets, puts]);
  });

  test("a changed drop-in restarts its unit after daemon-reload: systemd takes a unit's settings only when it starts it", async () => {
    const h = host();
    const one = await running(h);
    const marker = h.calls().length;
    const dropIn = { path: "/etc/systemd/system/demo.service.d/mailstack.conf", content: "[Service]\nExecStartPre=+/bin/true\n", reload: ["demo.service"] };
    const two = h.bundle([...one.files, dropIn]);
    publish(two);
    const r = await h.sync();
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    expect(h.calls().slice(marker)).toEqual(["daemon-reload", "restart demo.service"]);
  });

  test("a timer the bundle brings is enabled and started; one it drops is stopped, its enablement link removed, and not restarted", async () => {
    const h = host();
    const one = await running(h);
    const marker = h.calls().length;
    const timer = { path: "/etc/systemd/system/demo-import.timer", content: "[Timer]\nOnUnitActiveSec=5min\n", reload: ["demo-import.timer"] };
    const job = { path: "/etc/systemd/system/demo-import.service", content: "[Service]\nType=oneshot\nExecStart=/bin/true\n" };
    const two = h.bundle([...one.files, timer, job]);
    publish(two);
    const added = await h.sync();
    expect({ status: added.status, stderr: added.stderr }).toEqual({ status: 0, stderr: "" });
    expect(h.calls().slice(marker)).toEqual(["daemon-reload", "enable demo-import.timer", "restart demo-import.timer"]);

    // As `systemctl enable` left it on a real host.
    const link = join(h.root, "etc/systemd/system/timers.target.wants/demo-import.timer");
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync("/etc/systemd/system/demo-import.timer", link);
    const back = h.calls().length;
    publish(h.bundle(one.files));
    const dropped = await h.sync();
    expect({ status: dropped.status, stderr: dropped.stderr }).toEqual({ status: 0, stderr: "" });
    expect(h.calls().slice(back)).toEqual(["stop demo-import.timer", "daemon-reload"]);
    expect(existsSync(join(h.root, timer.path))).toBe(false);
    expect(existsSync(link) || readdirSync(dirname(link)).includes("demo-import.timer")).toBe(false);
  });

  test("a bundle that brings another mailstack-sync hands the rest of the run to it, once: the runtime files are the new program's to install", async () => {
    const h = host();
    const one = await running(h);
    const installed = "/usr/local/sbin/mailstack-sync";
    const program = join(h.root, installed);
    mkdirSync(dirname(program), { recursive: true });
    copyFileSync(SCRIPT, program);
    const original = readFileSync(SCRIPT, "utf8");
    const marker = 'say("the new program, handed over: %s" % ("--handed-over" in sys.argv))';
    const next = original.replace(/\nif __name__ == "__main__":\n/, `\n${marker}\n\nif __name__ == "__main__":\n`);
    expect(next).not.toBe(original);
    const two = h.bundle([...one.files, { path: installed, content: next, mode: "0755" }]);
    publish(two);
    const r = await h.sync({ script: program });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    const lines = r.stdout.trim().split("\n");
    expect(lines.filter((l) => !l.includes(`host bundle ${two.sha} applied`))).toEqual([`mailstack-sync: the host bundle changed ${program}: running the new one`, "mailstack-sync: the new program, handed over: True"]);
    // The new program found the bundle in force and left it alone.
    expect(h.state()).toMatchObject({ current: two.sha, previous: one.sha });
    // And it runs as itself from then on, with no second handing over.
    const again = await h.sync({ script: program });
    expect({ status: again.status, stdout: again.stdout }).toEqual({ status: 0, stdout: "mailstack-sync: the new program, handed over: False\n" });
  });

  test("a changed file is switched in and reloads only its units; a dropped file is deleted and its units reloaded", async () => {
    const h = host();
    const one = await running(h);
    const before = snapshot(h);
    const marker = h.calls().length;
    const two = second(h);
    publish(two);
    const r = await h.sync();
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    expect(r.stdout).toContain(`host bundle ${two.sha} applied: updated /etc/demo/app.conf, removed /etc/other/other.conf`);
    expectInstalled(h, two);
    expect(existsSync(join(h.root, "etc/other/other.conf"))).toBe(false);
    expect(h.calls().slice(marker)).toEqual(["reload-or-restart demo.service", "reload-or-restart other.service"]);
    expect(h.checks()).toEqual(["demo", "other", "demo"]);
    const after = snapshot(h);
    expect(Object.keys({ ...before, ...after }).filter((k) => after[k] !== before[k]).sort()).toEqual(["/etc/demo/app.conf", "/etc/other/other.conf"]);
    expect(h.state()).toMatchObject({ current: two.sha, previous: one.sha, refused: {} });
    expect(readdirSync(h.bundles).sort()).toEqual([`${one.sha}.json`, `${two.sha}.json`].sort());

    // Only the running bundle and the one before it are kept.
    const three = second(h, "valid 3\n");
    publish(three);
    expect((await h.sync()).status).toBe(0);
    expect(readdirSync(h.bundles).sort()).toEqual([`${two.sha}.json`, `${three.sha}.json`].sort());
    expect(h.state()).toMatchObject({ current: three.sha, previous: two.sha });
  });

  test("an object that does not hash to the pointer's SHA-256 installs nothing, is refused and reported, and is not downloaded again", async () => {
    const h = host();
    const one = await running(h);
    // A runtime file too: its step runs whatever the bundle's outcome.
    const users = "alice@example.com:{BLF-CRYPT}x::::::\n";
    ssm.parameters.set(`${PREFIX}/manifest`, JSON.stringify({ version: 2, object: RUNTIME_OBJECT, files: [{ name: "users", source: "object", sha256: sha256(users), mode: "0640", owner: "root", group: "root", reload: [] }] }));
    s3.objects.set(`/${BUCKET}/${RUNTIME_OBJECT.key}`, Buffer.from(JSON.stringify({ files: { users } })));
    const before = snapshot(h);
    const marker = h.calls(true).length;
    const two = second(h);
    const tampered = two.text.replace("valid 2", "valid X");
    publish(two, tampered);
    const r = await h.sync();
    const reason = `hash mismatch: the object hashes to ${sha256(tampered)}, the pointer says ${two.sha}`;
    expect({ status: r.status, stderr: r.stderr.trim().split("\n") }).toEqual({ status: 1, stderr: [`mailstack-sync: host bundle ${two.sha} not installed: ${reason}`] });
    const after = snapshot(h);
    expect(after).toMatchObject(before);
    expect(Object.keys(after).filter((k) => !(k in before))).toEqual(["/etc/mailstack/users"]);
    expect(readFileSync(join(h.root, "etc/mailstack/users"), "utf8")).toBe(users);
    expect(readdirSync(h.bundles)).toEqual([`${one.sha}.json`]);
    expect(h.calls(true).length).toBe(marker);
    expect(h.state()).toMatchObject({ current: one.sha, refused: { [two.sha]: reason } });
    expect(status()).toEqual({ running: one.sha, attempted: two.sha, result: "refused", reason, at: expect.any(String) });

    const [gets, puts] = [downloads(), ssm.puts().length];
    const again = await h.sync();
    expect({ status: again.status, stdout: again.stdout, stderr: again.stderr }).toEqual({ status: 0, stdout: "", stderr: "" });
    expect([downloads(), ssm.puts().length]).toEqual([gets, puts]);
  });

  test("a checker that rejects the staged files refuses the bundle: live files untouched, its output reported", async () => {
    const h = host();
    const one = await running(h);
    const before = snapshot(h);
    const marker = h.calls(true).length;
    const two = second(h, "broken 2\n");
    publish(two);
    const r = await h.sync();
    const reason = "demo check failed: demo: broken 2 is not valid";
    expect({ status: r.status, stderr: r.stderr.trim().split("\n") }).toEqual({ status: 1, stderr: [`mailstack-sync: host bundle ${two.sha} not installed: ${reason}`] });
    // The checker read "broken 2" where the live file says "valid 1": it saw the staged file,
    // which never reached the disk (same bytes, inode and mtime), and no overlay remains.
    expect(snapshot(h)).toEqual(before);
    expect(readFileSync(h.app, "utf8")).toBe("valid 1\n");
    expectNoOverlay(h);
    expect(h.calls(true).length).toBe(marker);
    expect(h.state()).toMatchObject({ current: one.sha, previous: null, refused: { [two.sha]: reason } });
    expect(status()).toMatchObject({ running: one.sha, attempted: two.sha, result: "refused", reason });
    expect(readdirSync(h.bundles)).toEqual([`${one.sha}.json`]);

    const gets = downloads();
    expect((await h.sync()).status).toBe(0);
    expect(downloads()).toBe(gets);
    expect(h.checks()).toEqual(["demo", "other", "demo"]);
  });

  test("a unit whose reload fails: files restored byte for byte, units reloaded again, rolled back, exit 1", async () => {
    const h = host();
    const one = await running(h);
    const contents = () => Object.fromEntries(Object.entries(snapshot(h)).map(([k, v]) => [k, v.split(" ").slice(0, 2).join(" ")]));
    const before = contents();
    const marker = h.calls().length;
    // A new unit drop-in, a changed file, a new file and a dropped one.
    const two = h.bundle([
      ...second(h).files,
      { path: "/etc/demo/new.conf", content: "new\n", reload: ["demo.service"] },
      { path: "/etc/systemd/system/demo.service.d/override.conf", content: "[Service]\nRestart=always\n", reload: [] },
    ]);
    publish(two);
    h.fail(["demo.service"]);
    const r = await h.sync();
    expect(r.status).toBe(1);
    const reason = "rolled back: demo.service reload-or-restart failed: Job for demo.service failed because the control process exited with error code.";
    expect(r.stderr).toContain(`mailstack-sync: host bundle ${two.sha} not installed: ${reason}\n`);
    // The old files fail the same way in this stand-in, and the script says so.
    expect(r.stderr).toContain("mailstack-sync: after restoring the files: demo.service reload-or-restart failed");
    expect(contents()).toEqual(before);
    expect(existsSync(join(h.root, "etc/demo/new.conf"))).toBe(false);
    expect(existsSync(join(h.root, "etc/systemd/system/demo.service.d/override.conf"))).toBe(false);
    const reloads = ["daemon-reload", "reload-or-restart demo.service", "reload-or-restart other.service"];
    expect(h.calls().slice(marker)).toEqual([...reloads, ...reloads]);
    expect(h.state()).toMatchObject({ current: one.sha, previous: null, refused: { [two.sha]: reason } });
    expect(status()).toEqual({ running: one.sha, attempted: two.sha, result: "rolled-back", reason, at: expect.any(String) });
    expect(readdirSync(h.bundles)).toEqual([`${one.sha}.json`]);

    // Not tried again.
    h.fail([]);
    const gets = downloads();
    const again = await h.sync();
    expect({ status: again.status, stdout: again.stdout, stderr: again.stderr }).toEqual({ status: 0, stdout: "", stderr: "" });
    expect(downloads()).toBe(gets);
    expect(contents()).toEqual(before);
  });

  test("a unit not active after the settle time is rolled back too", async () => {
    const h = host();
    const one = await running(h);
    const marker = h.calls().length;
    const two = second(h);
    publish(two);
    h.fail([], ["demo.service"]);
    const r = await h.sync();
    expect(r.status).toBe(1);
    const reason = "rolled back: demo.service not active after 1 s";
    expect(r.stderr).toContain(`not installed: ${reason}\n`);
    expect(readFileSync(h.app, "utf8")).toBe("valid 1\n");
    expect(readFileSync(join(h.root, "etc/other/other.conf"), "utf8")).toBe("other 1\n");
    expect(h.calls().slice(marker)).toEqual(["reload-or-restart demo.service", "reload-or-restart other.service", "reload-or-restart demo.service", "reload-or-restart other.service"]);
    expect(h.state()).toMatchObject({ current: one.sha, refused: { [two.sha]: reason } });
    expect(status()).toMatchObject({ result: "rolled-back", reason });
  });

  test("a changed Sieve script is compiled and a changed resolver file replaces the /etc/resolv.conf link", async () => {
    const h = host();
    mkdirSync(join(h.root, "etc/dovecot/sieve"), { recursive: true });
    symlinkSync("../run/systemd/resolve/stub-resolv.conf", join(h.root, "etc/resolv.conf"));
    const b = h.bundle([
      { path: "/etc/dovecot/sieve/before.sieve", content: 'require "fileinto";\nif header :contains "X-Spam" "yes" { fileinto "Junk"; }\n', reload: ["dovecot.service"] },
      { path: "/etc/mailstack-resolv.conf", content: "nameserver 127.0.0.1\noptions edns0 trust-ad\n" },
    ]);
    publish(b);
    const r = await h.sync({ env: { MAILSTACK_SIEVE: "/etc/dovecot/sieve", MAILSTACK_RESOLV_CONF: "/etc/mailstack-resolv.conf" } });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    expect(existsSync(join(h.root, "etc/dovecot/sieve/before.svbin"))).toBe(true);
    const resolv = join(h.root, "etc/resolv.conf");
    expect(lstatSync(resolv).isSymbolicLink()).toBe(false);
    expect(readFileSync(resolv, "utf8")).toBe("nameserver 127.0.0.1\noptions edns0 trust-ad\n");
    expect(h.calls()).toEqual(["reload-or-restart dovecot.service"]);
  });

  test("--install-bundle installs every file, with no network, no check and no reload; the timer then only reports", async () => {
    const h = host();
    const b = first(h);
    const file = join(h.root, "test", "first-boot.json");
    writeFileSync(file, b.text);
    // A file already as the bundle has it is written all the same.
    mkdirSync(join(h.root, "etc/demo"), { recursive: true });
    writeFileSync(h.app, "valid 1\n", { mode: 0o640 });
    const inode = lstatSync(h.app).ino;
    const r = await h.sync({ extra: ["--install-bundle", file], ssm: "http://127.0.0.1:1" });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    expect(r.stdout).toBe(`mailstack-sync: host bundle ${b.sha} installed: 5 files\n`);
    expectInstalled(h, b);
    expect(lstatSync(h.app).ino).not.toBe(inode);
    expect([ssm.requests.length, downloads(), h.calls(true), h.checks()]).toEqual([0, 0, [], []]);
    expect(existsSync(join(h.root, "etc/mailstack"))).toBe(false);
    expect(h.state()).toEqual({ current: b.sha, previous: null, refused: {}, reported: null });
    expect(readFileSync(join(h.bundles, `${b.sha}.json`), "utf8")).toBe(b.text);

    publish(b);
    const timer = await h.sync();
    expect({ status: timer.status, stdout: timer.stdout, stderr: timer.stderr }).toEqual({ status: 0, stdout: "", stderr: "" });
    expect([downloads(), h.calls(true)]).toEqual([0, []]);
    expect(ssm.puts()).toEqual([{ running: b.sha, attempted: b.sha, result: "applied", reason: null, at: expect.any(String) }]);
  });

  test("--rollback returns to the previous bundle through checks and reloads; the timer does not reinstall the one rolled back", async () => {
    const h = host();
    const one = await running(h);
    const two = second(h);
    publish(two);
    expect((await h.sync()).status).toBe(0);
    const marker = h.calls().length;
    const gets = downloads();
    const r = await h.sync({ extra: ["--rollback"], ssm: "http://127.0.0.1:1" });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    expect(r.stdout).toContain(`host bundle ${one.sha} applied: updated /etc/demo/app.conf, updated /etc/other/other.conf`);
    expectInstalled(h, one);
    expect(h.calls().slice(marker)).toEqual(["reload-or-restart demo.service", "reload-or-restart other.service"]);
    expect(h.checks().slice(-2)).toEqual(["demo", "other"]);
    expect(h.state()).toMatchObject({ current: one.sha, previous: two.sha, refused: { [two.sha]: "rolled back by hand" } });
    expect(downloads()).toBe(gets);

    // The pointer still names the bundle rolled back: the timer keeps the host as it is, and says why.
    const timer = await h.sync();
    expect({ status: timer.status, stdout: timer.stdout, stderr: timer.stderr }).toEqual({ status: 0, stdout: "", stderr: "" });
    expectInstalled(h, one);
    expect(h.calls().length).toBe(marker + 2);
    expect(downloads()).toBe(gets);
    expect(status()).toEqual({ running: one.sha, attempted: two.sha, result: "rolled-back", reason: "rolled back by hand", at: expect.any(String) });

    // A bundle the stack publishes next is installed as usual.
    const three = second(h, "valid 3\n");
    publish(three);
    expect((await h.sync()).status).toBe(0);
    expectInstalled(h, three);
    expect(h.state()).toMatchObject({ current: three.sha, previous: one.sha });
  });

  test("--rollback with no previous bundle changes nothing, exit 1", async () => {
    const h = host();
    const one = await running(h);
    const before = snapshot(h);
    const r = await h.sync({ extra: ["--rollback"] });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 1, stderr: "mailstack-sync: no previous host bundle to return to\n" });
    expect(snapshot(h)).toEqual(before);
    expect(h.state()).toMatchObject({ current: one.sha, previous: null, refused: {} });
  });

  test("the status parameter is written only when it changes, and a failed report is retried next run", async () => {
    const h = host();
    const b = first(h);
    publish(b);
    ssm.refusePut = true;
    const r = await h.sync();
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/^mailstack-sync: cannot report the host bundle's status to SSM: .*AccessDeniedException.*; will retry\n$/);
    expectInstalled(h, b);
    expect(h.state().reported).toBeNull();
    ssm.refusePut = false;
    expect(ssm.puts()).toHaveLength(1); // the refused one

    for (let i = 0; i < 2; i++) expect((await h.sync()).status).toBe(0);
    expect(ssm.puts()).toHaveLength(2);
    expect(ssm.puts()[1]).toMatchObject({ running: b.sha, attempted: b.sha, result: "applied" });
    expect(h.state().reported).toEqual({ running: b.sha, attempted: b.sha, result: "applied", reason: null });
    expect(ssm.requests.filter((q) => q.target === "AmazonSSM.PutParameter").every((q) => q.body.Name === STATUS)).toBe(true);
  });

  test("a pointer to an object not in S3 yet: exit 75, nothing recorded, installed once it is there", async () => {
    const h = host();
    const b = first(h);
    pointAt(b.sha);
    const r = await h.sync();
    expect({ status: r.status, stderr: r.stderr.trim().split("\n") }).toEqual({
      status: 75,
      stderr: [`mailstack-sync: host bundle ${b.sha} is not in s3://${BUCKET}/${keyOf(b.sha)} yet; will retry`],
    });
    expect(snapshot(h)).toEqual({});
    expect(existsSync(h.bundleState)).toBe(false);
    expect(ssm.puts()).toEqual([]);
    publish(b);
    expect((await h.sync()).status).toBe(0);
    expectInstalled(h, b);
  });

  test("a bundle with a path outside its directories is refused as invalid, nothing written", async () => {
    const h = host();
    const b = h.bundle([
      { path: "/etc/demo/app.conf", content: "valid 1\n", check: "demo" },
      { path: "/etc/demo/../../escaped", content: "owned\n" },
    ]);
    publish(b);
    const r = await h.sync();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`not installed: invalid bundle: path '/etc/demo/../../escaped' is not an absolute, normalised path below a top-level directory`);
    expect(snapshot(h)).toEqual({});
    expect(existsSync(join(h.root, "..", "escaped"))).toBe(false);
    expect(status()).toMatchObject({ running: null, attempted: b.sha, result: "refused" });
  });

  test("a pointer without --bundles or MAILSTACK_BUNDLES is a usage error", async () => {
    const h = host();
    publish(first(h));
    const r = await runAsync("/usr/bin/python3", [SCRIPT, "--prefix", PREFIX, "--endpoint-url", ssm.endpoint, "--region", "us-east-1", "--dest", join(h.root, "etc/mailstack"), "--state", join(h.root, "state.json")], {
      env: { HOME: h.root, AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE", AWS_SECRET_ACCESS_KEY: "x", AWS_CONFIG_FILE: join(h.root, "none"), AWS_EC2_METADATA_DISABLED: "true" },
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--bundles or MAILSTACK_BUNDLES is required");
    expect(downloads()).toBe(0);
  });
});
