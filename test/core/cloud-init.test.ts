// The first boot as the user data orders it: no daemon starts during the package install, and
// cloud-init only hands the setup to a systemd unit that retries it until it has succeeded. The
// user data holds nothing else: every host file comes in the host bundle.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { load } from "js-yaml";
import {
  cloudInit,
  compressedUserData,
  DATA_VOLUME_BINDS,
  DEFAULTS_FILE,
  HOST_BUNDLE_PARAMETERS,
  HOST_SCRIPTS,
  hostFiles,
  parseConfig,
  POLICY_RC_D,
  PRODUCTION_ENV,
  STATE_FILES,
  UNITS,
  USER_DATA_BUDGET,
} from "@mailstack/core";
import { fullConfig, minimalConfig } from "../support/fixtures";
import { unitSections } from "../support/unit-file";

const BOOT = { region: "eu-west-1", ssmPath: "/mailstack/prod/mail" };
const PARAMS = { ...BOOT, dataVolumeId: "vol-0123456789abcdef0", backupRepository: "s3:https://s3.eu-west-1.amazonaws.com/b/restic" };
const config = parseConfig(fullConfig());

interface Entry {
  path: string;
  content: string;
  permissions?: string;
  owner?: string;
  defer?: boolean;
}
interface Document {
  packages: string[];
  write_files: Entry[];
  runcmd: (string | string[])[];
}
const document = load(cloudInit(config, BOOT)) as Document;
const files = hostFiles(config, PARAMS);
const file = (path: string) => files.find((f) => f.path === path)!;

const BOOTSTRAP_UNIT = `${HOST_SCRIPTS.bootstrap}.service`;
const scripts = join(__dirname, "..", "..", "packages", "core", "scripts");
const bootstrapScript = readFileSync(join(scripts, "mailstack-bootstrap.sh"), "utf8");
const firstBootScript = readFileSync(join(scripts, "mailstack-first-boot.py"), "utf8");

const defaults = Object.fromEntries([...file(DEFAULTS_FILE).content.matchAll(/^([A-Z_0-9]+)="(.*)"$/gm)].map((m) => [m[1], m[2]]));

describe("no daemon starts during the first boot's package install", () => {
  test("a policy-rc.d that refuses every start is the one file written before the packages install", () => {
    const early = document.write_files.filter((f) => f.defer !== true);
    expect(early).toEqual([{ path: POLICY_RC_D, content: "#!/bin/sh\nexit 101\n", permissions: "0755" }]);
    expect(POLICY_RC_D).toBe("/usr/sbin/policy-rc.d");
    // After the packages: the first-boot program (python3-boto3 is one of them) and its unit. No host file.
    expect(document.write_files.filter((f) => f.defer === true).map((f) => [f.path, f.permissions])).toEqual([
      [`${PRODUCTION_ENV.paths.sbin}/${HOST_SCRIPTS.firstBoot}`, "0755"],
      [`/etc/systemd/system/${BOOTSTRAP_UNIT}`, undefined],
    ]);
    expect(document.packages).toContain("python3-boto3");
    expect(document.write_files.find((f) => f.path.endsWith(HOST_SCRIPTS.firstBoot))!.content).toBe(firstBootScript);
  });

  test("the bootstrap removes it before anything else, and resets the failed state of the daemons it manages", () => {
    expect(defaults.MAILSTACK_POLICY_RC_D).toBe(POLICY_RC_D);
    const commands = bootstrapScript.split("\n").filter((l) => l.trim() !== "" && !l.trim().startsWith("#"));
    // set -euo pipefail and reading the settings: then the removal.
    expect(commands.slice(0, 5)).toEqual(["set -euo pipefail", "set -a", ". /etc/default/mailstack", "set +a", 'rm -f "$MAILSTACK_POLICY_RC_D"']);
    const reset = defaults.MAILSTACK_BOOT_RESET.split(" ");
    // postfix@- is the unit that failed (no main.cf yet); the wrapper's reset does not reach it.
    expect(reset).toContain(UNITS.postfixInstance);
    for (const u of [...defaults.MAILSTACK_BOOT_STOP.split(" "), ...defaults.MAILSTACK_BOOT_START.split(" ").filter((u) => u.endsWith(".service"))]) expect(reset).toContain(u);
    for (const u of [UNITS.unbound, UNITS.resolved, UNITS.nftables]) expect(reset).toContain(u);
    expect(commands).toContain('systemctl reset-failed "${boot_reset[@]}" 2>/dev/null || true');
    // After the stop, which leaves a failed unit failed; before the data volume, which may wait.
    const at = (line: string) => commands.findIndex((l) => l.startsWith(line));
    expect(at("systemctl stop ")).toBeLessThan(at("systemctl reset-failed "));
    expect(at("systemctl reset-failed ")).toBeLessThan(at('systemctl enable --now "$MAILSTACK_DATA_VOLUME_UNIT"'));
  });
});

describe("cloud-init hands the setup to a unit that systemd retries", () => {
  // Read in each test, so that each fails on its own where the unit is missing.
  let unit: Record<string, Record<string, string[]>>;
  beforeEach(() => {
    unit = unitSections(document.write_files.find((f) => f.path === `/etc/systemd/system/${BOOTSTRAP_UNIT}`)?.content ?? "");
  });

  test("runcmd enables and starts the unit without waiting for it, and runs nothing else", () => {
    expect(document.runcmd).toEqual([`systemctl enable ${BOOTSTRAP_UNIT}`, `systemctl start --no-block ${BOOTSTRAP_UNIT}`]);
    expect(JSON.stringify(document.runcmd)).not.toContain(`${PRODUCTION_ENV.paths.sbin}/${HOST_SCRIPTS.bootstrap}`);
  });

  test("the unit retries forever, and stays active once the script succeeds", () => {
    expect(unit.Service.Type).toEqual(["oneshot"]);
    expect(unit.Service.RemainAfterExit).toEqual(["yes"]);
    expect(unit.Service.Restart).toEqual(["on-failure"]);
    const restartSec = /^(\d+)s$/.exec(unit.Service.RestartSec[0])!;
    expect(Number(restartSec[1])).toBeGreaterThanOrEqual(15);
    expect(Number(restartSec[1])).toBeLessThanOrEqual(30);
    // In [Unit], where systemd reads it: the default limit (5 starts in 10 s) would end the retries.
    expect(unit.Unit.StartLimitIntervalSec).toEqual(["0"]);
    expect(unit.Service.StartLimitIntervalSec).toBeUndefined();
    // A hung step (a network call) ends in a retry, not a unit that waits forever.
    expect(unit.Service.TimeoutStartSec).toEqual(["30min"]);
    expect(unit.Service.ExecStart).toEqual([`${PRODUCTION_ENV.paths.sbin}/${HOST_SCRIPTS.firstBoot}`]);
    // Every exit but 0 is a failure to retry, 75 (SSM or S3 not reachable yet) too.
    expect(unit.Service.SuccessExitStatus).toBeUndefined();
    expect(unit.Service.RestartPreventExitStatus).toBeUndefined();
    expect(firstBootScript).toMatch(/except Exception as problem:\n.*will retry.*\n\s+return EX_TEMPFAIL\n/);
  });

  test("an SSM out of reach for long: the waits between tries grow to a few minutes, then the tries go on at that pace", () => {
    const seconds = (value: string) => {
      const m = /^(\d+)(s|min)$/.exec(value)!;
      return Number(m[1]) * (m[2] === "min" ? 60 : 1);
    };
    const first = seconds(unit.Service.RestartSec[0]);
    const last = seconds(unit.Service.RestartMaxDelaySec[0]);
    const steps = Number(unit.Service.RestartSteps[0]);
    expect(last).toBeGreaterThan(first);
    expect(last).toBeLessThanOrEqual(600);
    expect(steps).toBeGreaterThanOrEqual(1);
    // systemd 254+: the n-th wait is RestartSec * (RestartMaxDelaySec / RestartSec)^(n / RestartSteps), n capped at RestartSteps.
    const wait = (n: number) => first * (last / first) ** (Math.min(n, steps) / steps);
    const waits = Array.from({ length: 30 }, (_, n) => wait(n));
    expect(waits.every((w, n) => n === 0 || w >= waits[n - 1])).toBe(true);
    // Ten minutes without SSM cost a few tries, and once it answers the next try is at most RestartMaxDelaySec away;
    // there is no last try: StartLimitIntervalSec=0 (above) lifts systemd's start limit.
    let elapsed = 0;
    let tries = 0;
    while (elapsed < 600) elapsed += waits[tries++];
    expect(tries).toBeGreaterThanOrEqual(4);
    expect(tries).toBeLessThanOrEqual(10);
    expect(waits[29]).toBe(last);
  });

  test("the first-boot program gets from its unit every setting it reads, and the same ones the bundle's settings file gives later", () => {
    const given = Object.fromEntries(unit.Service.Environment.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
    const read = [...firstBootScript.matchAll(/env\["([A-Z_0-9]+)"\]/g)].map((m) => m[1]);
    expect(read.length).toBeGreaterThan(3);
    for (const name of new Set(read)) expect({ name, given: given[name] !== undefined }).toEqual({ name, given: true });
    expect(given.MAILSTACK_BUNDLE_POINTER).toBe(`${BOOT.ssmPath}/${HOST_BUNDLE_PARAMETERS.pointer}`);
    expect(given.MAILSTACK_BOOTSTRAP_COMMAND).toBe(`${PRODUCTION_ENV.paths.sbin}/${HOST_SCRIPTS.bootstrap}`);
    // The bundle installs the program it then runs under the same names.
    for (const [name, value] of Object.entries(given)) if (defaults[name] !== undefined) expect({ name, value }).toEqual({ name, value: defaults[name] });
    expect(files.map((f) => f.path)).toContain(given.MAILSTACK_SYNC_COMMAND);
    expect(files.map((f) => f.path)).toContain(given.MAILSTACK_BOOTSTRAP_COMMAND);
    // The settings file the bootstrap reads is the bundle's, not the user data's.
    expect(bootstrapScript).toContain(`. ${DEFAULTS_FILE}`);
    expect(unit.Service.EnvironmentFile).toBeUndefined();
  });

  test("it waits for the network, resumes after a reboot, and holds no boot target back while it retries", () => {
    expect(unit.Unit.After.join(" ").split(" ")).toEqual(expect.arrayContaining(["network-online.target", "multi-user.target"]));
    expect(unit.Unit.Wants).toEqual(["network-online.target"]);
    expect(unit.Install.WantedBy).toEqual(["multi-user.target"]);
  });

  test("once the script has finished on this instance, the unit does nothing; a replacement instance runs it again", () => {
    const marker = `${PRODUCTION_ENV.paths.state}/${STATE_FILES.bootstrapDone}`;
    expect(unit.Unit.ConditionPathExists).toEqual([`!${marker}`]);
    expect(defaults.MAILSTACK_BOOTSTRAP_DONE).toBe(marker);
    // On the root volume: nothing of the data volume is mounted over it.
    for (const dir of [PRODUCTION_ENV.paths.data, ...DATA_VOLUME_BINDS.map((b) => b.target)]) expect(marker.startsWith(`${dir}/`)).toBe(false);
    // The script's very last steps write it, after the daemons and timers are started.
    const commands = bootstrapScript.split("\n").filter((l) => l.trim() !== "" && !l.trim().startsWith("#"));
    expect(commands.slice(-3)).toEqual(['mkdir -p "$MAILSTACK_STATE"', 'touch "$MAILSTACK_BOOTSTRAP_DONE"', 'log "done"']);
    expect(commands.findIndex((l) => l.startsWith('systemctl enable --now "${boot_start[@]}"'))).toBeLessThan(commands.length - 3);
  });

  test("the script no longer retries the sync itself: a failure fails the unit, which retries", () => {
    const commands = bootstrapScript.split("\n").filter((l) => !l.trim().startsWith("#"));
    expect(commands.filter((l) => /\b(seq|sleep|while|for|until)\b/.test(l))).toEqual([]);
    expect(bootstrapScript.split("\n")).toContain('"$MAILSTACK_SYNC_COMMAND" --no-reload');
    expect(bootstrapScript.startsWith("#!/bin/bash\n")).toBe(true);
    expect(bootstrapScript).toContain("set -euo pipefail");
  });
});

describe("the user data is small and depends on nothing but the host name", () => {
  const long = { region: "ap-southeast-4", ssmPath: `/${"p".repeat(200)}/${"s".repeat(200)}/mail` };
  const many = { ...minimalConfig(), hostname: `${"m".repeat(60)}.${"d".repeat(60)}.example.com`, pop3: true, extraDomains: Array.from({ length: 40 }, (_, i) => `domain-number-${i}.example`) };

  test.each([
    ["the full config", fullConfig(), BOOT],
    ["a long host name, forty domains and a long parameter path", many, long],
  ])(`%s: under the ${USER_DATA_BUDGET}-byte budget, a quarter of EC2's limit`, (_label, input, boot) => {
    expect(compressedUserData(cloudInit(parseConfig(input), boot)).length).toBeLessThanOrEqual(USER_DATA_BUDGET);
  });

  test("any other setting leaves it byte-identical", () => {
    const base = cloudInit(parseConfig(minimalConfig()), BOOT);
    expect(cloudInit(parseConfig({ ...fullConfig(), hostname: "mail.example.com", messageSizeLimitMiB: 10, backupSchedule: "*-*-* 05:00:00" }), BOOT)).toBe(base);
    expect(cloudInit(parseConfig({ ...minimalConfig(), hostname: "mx.example.com" }), BOOT)).not.toBe(base);
  });
});
