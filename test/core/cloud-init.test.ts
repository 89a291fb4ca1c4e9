// The first boot as the user data orders it: no daemon starts during the package install, and
// cloud-init only hands the setup to a systemd unit that retries it until it has succeeded.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { load } from "js-yaml";
import {
  cloudInit,
  compressedUserData,
  DATA_VOLUME_BINDS,
  DEFAULTS_FILE,
  HOST_SCRIPTS,
  hostFiles,
  parseConfig,
  POLICY_RC_D,
  PRODUCTION_ENV,
  STATE_FILES,
  UNITS,
  USER_DATA_LIMIT,
} from "@mailstack/core";
import { fullConfig, minimalConfig } from "../support/fixtures";
import { unitSections } from "../support/unit-file";

const PARAMS = { region: "eu-west-1", ssmPath: "/mailstack/prod/mail", dataVolumeId: "vol-0123456789abcdef0", backupRepository: "s3:https://s3.eu-west-1.amazonaws.com/b/restic" };
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
const document = load(cloudInit(config, PARAMS)) as Document;
const files = hostFiles(config, PARAMS);
const file = (path: string) => files.find((f) => f.path === path)!;

const BOOTSTRAP_UNIT = `${HOST_SCRIPTS.bootstrap}.service`;
const bootstrapScript = readFileSync(join(__dirname, "..", "..", "packages", "core", "scripts", "mailstack-bootstrap.sh"), "utf8");

const defaults = Object.fromEntries([...file(DEFAULTS_FILE).content.matchAll(/^([A-Z_0-9]+)="(.*)"$/gm)].map((m) => [m[1], m[2]]));

describe("no daemon starts during the first boot's package install", () => {
  test("a policy-rc.d that refuses every start is the one file written before the packages install", () => {
    const early = document.write_files.filter((f) => f.defer !== true);
    expect(early).toEqual([{ path: POLICY_RC_D, content: "#!/bin/sh\nexit 101\n", permissions: "0755" }]);
    expect(POLICY_RC_D).toBe("/usr/sbin/policy-rc.d");
    // Every file the host keeps is written after the packages, as before.
    expect(document.write_files.filter((f) => f.defer === true).map((f) => f.path)).toEqual(files.map((f) => f.path));
  });

  test("the deferred files carry each file's mode and owner, leaving out only cloud-init's defaults (0644, root:root)", () => {
    for (const entry of document.write_files.filter((f) => f.defer === true)) {
      const f = file(entry.path);
      expect({ path: f.path, mode: entry.permissions ?? "0644", owner: entry.owner ?? "root:root", content: entry.content === f.content }).toEqual({
        path: f.path,
        mode: f.mode,
        owner: f.owner,
        content: true,
      });
    }
    // Both forms occur, so the check above covers stated and defaulted ones.
    expect(document.write_files.some((f) => f.owner === "root:dovecot")).toBe(true);
    expect(document.write_files.some((f) => f.defer && f.permissions === undefined)).toBe(true);
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
    unit = unitSections(files.find((f) => f.path === `/etc/systemd/system/${BOOTSTRAP_UNIT}`)?.content ?? "");
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
    expect(unit.Service.EnvironmentFile).toEqual([DEFAULTS_FILE]);
    expect(unit.Service.ExecStart).toEqual([`${PRODUCTION_ENV.paths.sbin}/${HOST_SCRIPTS.bootstrap}`]);
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

test.each([
  ["the full config", fullConfig()],
  ["a config with POP3 and many domains", { ...minimalConfig(), pop3: true, extraDomains: Array.from({ length: 20 }, (_, i) => `domain-number-${i}.example`) }],
])("the user data of %s stays under EC2's limit", (_label, input) => {
  expect(compressedUserData(cloudInit(parseConfig(input), PARAMS)).length).toBeLessThanOrEqual(USER_DATA_LIMIT);
});
