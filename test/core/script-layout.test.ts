// The host's scripts state no path, file or unit name that the core's layout states: they read
// each from /etc/default/mailstack, which the core renders, so every such fact has one home.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  BACKUP_KEEP_FILE,
  CERTIFICATE_NAMES_FILE,
  DATA_VOLUME_BINDS,
  DATA_VOLUME_DEVICE,
  DATA_VOLUME_LABEL,
  DATA_VOLUME_XEN_DEVICE,
  DEFAULTS_FILE,
  HOST_BUNDLE_PARAMETERS,
  HOST_SCRIPTS,
  hostFiles,
  NFT_ADMIN_FILE,
  parseConfig,
  POLICY_RC_D,
  PRODUCTION_ENV,
  RESTIC_PASSWORD_FILE,
  STATE_FILES,
  TLS_KEY_FILE,
  UNITS,
} from "@mailstack/core";
import { fullConfig } from "../support/fixtures";

const SCRIPTS_DIR = join(__dirname, "..", "..", "packages", "core", "scripts");
const scripts = readdirSync(SCRIPTS_DIR)
  .sort()
  .map((name) => ({ name, text: readFileSync(join(SCRIPTS_DIR, name), "utf8") }));

const PARAMS = { region: "eu-west-1", ssmPath: "/mailstack/prod/mail", dataVolumeId: "vol-0123456789abcdef0", backupRepository: "s3:s3.eu-west-1.amazonaws.com/mail-backups/restic" };
// With sesInbound, so that the SES importer's script, units and settings are among them.
const files = hostFiles(parseConfig({ ...fullConfig(), sesInbound: true, sesRegion: "eu-west-1" }), { ...PARAMS, sesInboundBucket: "mail-inbound" });

/** Every fact of the layout a script could state, with where the core states it. */
function layoutFacts(): { fact: string; value: string; as: "name" | "path" | "command" }[] {
  const facts: { fact: string; value: string; as: "name" | "path" | "command" }[] = [];
  for (const [key, value] of Object.entries(PRODUCTION_ENV.paths)) facts.push({ fact: `PRODUCTION_ENV.paths.${key}`, value, as: "name" });
  for (const bind of DATA_VOLUME_BINDS) facts.push({ fact: `DATA_VOLUME_BINDS ${bind.dir}`, value: bind.target, as: "name" });
  facts.push(
    { fact: "DATA_VOLUME_LABEL", value: DATA_VOLUME_LABEL, as: "name" },
    { fact: "DATA_VOLUME_DEVICE", value: DATA_VOLUME_DEVICE, as: "name" },
    { fact: "DATA_VOLUME_XEN_DEVICE", value: DATA_VOLUME_XEN_DEVICE, as: "name" },
    { fact: "POLICY_RC_D", value: POLICY_RC_D, as: "path" },
  );
  for (const [key, value] of Object.entries(UNITS)) facts.push({ fact: `UNITS.${key}`, value, as: "name" });
  for (const [key, value] of Object.entries(STATE_FILES)) facts.push({ fact: `STATE_FILES.${key}`, value, as: "name" });
  for (const [fact, value] of Object.entries({ RESTIC_PASSWORD_FILE, BACKUP_KEEP_FILE, TLS_KEY_FILE, CERTIFICATE_NAMES_FILE, NFT_ADMIN_FILE })) facts.push({ fact, value, as: "name" });
  // A script may name itself or another in a message; it may not run one, or name its unit.
  for (const [key, value] of Object.entries(HOST_SCRIPTS)) facts.push({ fact: `HOST_SCRIPTS.${key}`, value, as: "command" });
  // Every file the core renders under a directory of its own (the scripts, units, configs).
  for (const f of files) if (f.path !== DEFAULTS_FILE) facts.push({ fact: `hostFiles ${f.path}`, value: f.path, as: "path" });
  return facts;
}

// A fact is a whole name: not preceded by a name character (a "-" may precede, as in
// `${VAR:-value}`), not followed by one or by an extension.
const BEFORE = "[A-Za-z0-9_.]";
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Where a text states a fact: the value as a whole word (a path below it counts), or as a command or unit. */
function statements(text: string, value: string, as: "name" | "path" | "command"): string[] {
  const pattern =
    as === "command"
      ? `/${escape(value)}(?![A-Za-z0-9_.-])|(?<!${BEFORE})${escape(value)}\\.(?:service|timer)\\b`
      : `(?<!${BEFORE})${escape(value)}(?![A-Za-z0-9_-]|\\.[A-Za-z0-9])`;
  return text.split("\n").filter((line) => new RegExp(pattern).test(line));
}

/** Every line of every script that states a fact of the layout. */
function hardCoded(texts: { name: string; text: string }[]): { script: string; fact: string; line: string }[] {
  return texts.flatMap(({ name, text }) => layoutFacts().flatMap(({ fact, value, as }) => statements(text, value, as).map((line) => ({ script: name, fact, line: line.trim() }))));
}

test("the scripts are the ten the core installs", () => {
  expect(scripts.map((s) => s.name)).toEqual([
    "mailstack-alert.sh",
    "mailstack-backup.sh",
    "mailstack-bootstrap.sh",
    "mailstack-certificate.sh",
    "mailstack-data-volume.sh",
    "mailstack-first-boot.py",
    "mailstack-logs.py",
    "mailstack-metrics.py",
    "mailstack-ses-import.py",
    "mailstack-sync.py",
  ]);
});

test("no script states a path, file, unit or script name that the core's layout states", () => {
  expect(hardCoded(scripts)).toEqual([]);
});

test("the check finds what it looks for (it would fail on the scripts as they were)", () => {
  const before = [
    'parser.add_argument("--state", default="/var/lib/mailstack/sync-state.json")',
    '  useradd --system --gid vmail --home-dir /var/vmail \\',
    'if ! cmp -s /etc/resolv.conf /etc/mailstack-resolv.conf; then',
    "sievec /etc/dovecot/sieve",
    'systemctl stop postfix.service dovecot.service 2>/dev/null || true',
    '"$sbin/mailstack-data-volume"',
    "  nginx.service fail2ban.service mailstack-sync.timer",
    'label="${MAILSTACK_DATA_LABEL:-mailstack-data}"',
    "    if [ -b /dev/xvdf ]; then echo /dev/xvdf; return 0; fi",
    'export RESTIC_CACHE_DIR="$MAILSTACK_STATE/restic-cache"',
    'mapfile -t keep <"$MAILSTACK_RUNTIME/backup/keep"',
    "rm -f /usr/sbin/policy-rc.d",
  ];
  const found = hardCoded(before.map((text, i) => ({ name: `line ${i}`, text })));
  expect(before.map((_, i) => found.some((f) => f.script === `line ${i}`))).toEqual(before.map(() => true));
  expect(found.map((f) => f.fact)).toEqual(
    expect.arrayContaining([
      "STATE_FILES.sync",
      "PRODUCTION_ENV.paths.state",
      "PRODUCTION_ENV.paths.vmail",
      "DATA_VOLUME_BINDS vmail",
      "PRODUCTION_ENV.paths.resolvConf",
      "hostFiles /etc/mailstack-resolv.conf",
      "PRODUCTION_ENV.paths.sieve",
      "UNITS.postfix",
      "HOST_SCRIPTS.dataVolume",
      "HOST_SCRIPTS.sync",
      "DATA_VOLUME_LABEL",
      "DATA_VOLUME_XEN_DEVICE",
      "STATE_FILES.resticCache",
      "BACKUP_KEEP_FILE",
      "POLICY_RC_D",
    ]),
  );
  // Names that merely start like a fact are other names.
  expect(hardCoded([{ name: "log", text: 'log() { echo "mailstack-data-volume: $*" >&2; }\ncp /etc/mailstack-resolv.conf.bak x' }]).map((f) => f.fact)).toEqual([]);
});

test("the one path a shell script states is the defaults file, the core's DEFAULTS_FILE; the Python script states none", () => {
  for (const { name, text } of scripts) {
    const named = [...text.matchAll(/\/etc\/default\/[A-Za-z0-9_.-]+/g)].map((m) => m[0]);
    if (name.endsWith(".py")) {
      // Its docstring may say where the settings come from; its code reads the environment.
      expect({ name, code: text.replace(/"""[\s\S]*?"""/g, "").includes(DEFAULTS_FILE) }).toEqual({ name, code: false });
    } else {
      expect({ name, named: [...new Set(named)] }).toEqual({ name, named: [DEFAULTS_FILE] });
    }
  }
  expect(files.find((f) => f.path === DEFAULTS_FILE)).toBeDefined();
  for (const unit of files.filter((f) => /\.service$/.test(f.path) && f.content.includes("ExecStart="))) {
    expect({ unit: unit.path, environment: /^EnvironmentFile=(.*)$/m.exec(unit.content)?.[1] }).toEqual({ unit: unit.path, environment: DEFAULTS_FILE });
  }
});

test("the rendered defaults define every setting a script reads", () => {
  const defaults = files.find((f) => f.path === DEFAULTS_FILE)!.content;
  const defined = new Set([...defaults.matchAll(/^([A-Z_0-9]+)=/gm)].map((m) => m[1]));
  // Test-only overrides of the data volume script, never set on a host.
  const testOnly = new Set(["MAILSTACK_DATA_DEVICE"]);
  const read = new Set(scripts.flatMap(({ text }) => [...text.matchAll(/\b(MAILSTACK_[A-Z0-9_]+|AWS_DEFAULT_REGION)\b/g)].map((m) => m[1])));
  expect([...read].filter((v) => !defined.has(v) && !testOnly.has(v)).sort()).toEqual([]);
  expect(read.size).toBeGreaterThan(30);
});

test("the settings name what the core installs", () => {
  const defaults = Object.fromEntries(
    [...files.find((f) => f.path === DEFAULTS_FILE)!.content.matchAll(/^([A-Z_0-9]+)="(.*)"$/gm)].map((m) => [m[1], m[2]]),
  );
  const paths = new Set(files.map((f) => f.path));
  for (const command of ["MAILSTACK_SYNC_COMMAND", "MAILSTACK_CERTIFICATE_COMMAND"]) {
    expect({ command, installed: paths.has(defaults[command]) }).toEqual({ command, installed: true });
  }
  expect(paths.has(`/etc/systemd/system/${defaults.MAILSTACK_DATA_VOLUME_UNIT}`)).toBe(true);
  expect(paths.has(defaults.MAILSTACK_RESOLV_CONF)).toBe(true);
  expect(files.filter((f) => f.path.startsWith(`${defaults.MAILSTACK_SIEVE}/`)).length).toBeGreaterThan(0);
  // Every timer the bootstrap starts is one the core writes, and every one it writes is started.
  const timers = defaults.MAILSTACK_BOOT_START.split(" ").filter((u) => u.endsWith(".timer"));
  expect(timers.sort()).toEqual(files.filter((f) => f.path.endsWith(".timer")).map((f) => f.path.split("/").pop()).sort());
  expect(defaults.MAILSTACK_DATA_XEN_DEVICE).toBe("/dev/xvdf");
  expect(defaults.MAILSTACK_SYNC_STATE).toBe("/var/lib/mailstack/sync-state.json");
  expect(defaults.MAILSTACK_RESTIC_PASSWORD_FILE).toBe("/etc/mailstack/backup/restic-password");
  // The certificate script reloads these, in this order (test/e2e/certificate.test.ts stubs systemctl for it).
  expect(defaults.MAILSTACK_TLS_UNITS).toBe("postfix.service dovecot.service nginx.service");
});

test("mailstack-sync reads the bundle's pointer and writes its report under the names the stack gives them", () => {
  const sync = scripts.find((s) => s.name === "mailstack-sync.py")!.text;
  expect(/^POINTER = "([^"]+)"$/m.exec(sync)?.[1]).toBe(HOST_BUNDLE_PARAMETERS.pointer);
  expect(/^STATUS = "([^"]+)"$/m.exec(sync)?.[1]).toBe(HOST_BUNDLE_PARAMETERS.status);
});
