// The data volume is mounted at every boot by a unit that runs mailstack-data-volume, not by
// fstab; every unit that reads or writes data on the volume requires that unit and starts after it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DATA_VOLUME_BINDS, DEFAULTS_FILE, HOST_SCRIPTS, hostFiles, parseConfig, PRODUCTION_ENV, UNITS } from "@mailstack/core";
import { fullConfig } from "../support/fixtures";
import { unitSections } from "../support/unit-file";

const PARAMS = { region: "eu-west-1", ssmPath: "/mailstack/prod/mail", dataVolumeId: "vol-0123456789abcdef0", backupRepository: "s3:https://s3.eu-west-1.amazonaws.com/b/restic" };
const files = hostFiles(parseConfig(fullConfig()), PARAMS);
const SYSTEMD = "/etc/systemd/system";
const UNIT = `${HOST_SCRIPTS.dataVolume}.service`;
const SCRIPTS_DIR = join(__dirname, "..", "..", "packages", "core", "scripts");
const dataVolumeScript = readFileSync(join(SCRIPTS_DIR, "mailstack-data-volume.sh"), "utf8");
const bootstrapScript = readFileSync(join(SCRIPTS_DIR, "mailstack-bootstrap.sh"), "utf8");

const rendered = (path: string) => unitSections(files.find((f) => f.path === path)?.content ?? "");
/** Every value of a space-separated list setting, over all its lines. */
const words = (values: string[] | undefined) => (values ?? []).join(" ").split(" ").filter(Boolean);
const commands = (text: string) => text.split("\n").filter((l) => l.trim() !== "" && !l.trim().startsWith("#"));
const defaults = Object.fromEntries([...files.find((f) => f.path === DEFAULTS_FILE)!.content.matchAll(/^([A-Z_0-9]+)="(.*)"$/gm)].map((m) => [m[1], m[2]]));

/**
 * The units that read or write data on the volume (see DATA_VOLUME_BINDS): where their
 * dependency is stated, and the unit name systemd orders the data volume unit before.
 */
const USERS = [
  // The queue and the maildirs.
  { file: `${SYSTEMD}/postfix@.service.d/mailstack.conf`, unit: UNITS.postfixInstance },
  // The maildirs, and its LMTP and auth sockets in Postfix's queue directory.
  { file: `${SYSTEMD}/${UNITS.dovecot}.d/mailstack.conf`, unit: UNITS.dovecot },
  // rspamd's Bayes database.
  { file: `${SYSTEMD}/${UNITS.redis}.d/mailstack.conf`, unit: UNITS.redis },
  // certbot's /etc/letsencrypt: the ACME account and the last certificate.
  { file: `${SYSTEMD}/${HOST_SCRIPTS.certificate}.service`, unit: `${HOST_SCRIPTS.certificate}.service` },
  // It backs up the maildirs and the queue (and would prune by an empty maildir).
  { file: `${SYSTEMD}/${HOST_SCRIPTS.backup}.service`, unit: `${HOST_SCRIPTS.backup}.service` },
];

describe("the data volume unit", () => {
  let unit: Record<string, Record<string, string[]>>;
  beforeEach(() => {
    unit = rendered(`${SYSTEMD}/${UNIT}`);
  });

  test("runs the script once per boot and stays active, with the host's settings", () => {
    expect(unit.Service?.Type).toEqual(["oneshot"]);
    expect(unit.Service.RemainAfterExit).toEqual(["yes"]);
    expect(unit.Service.EnvironmentFile).toEqual([DEFAULTS_FILE]);
    expect(unit.Service.ExecStart).toEqual([`${PRODUCTION_ENV.paths.sbin}/${HOST_SCRIPTS.dataVolume}`]);
    expect(defaults.MAILSTACK_DATA_VOLUME_UNIT).toBe(UNIT);
    // No retry of its own: a volume that is not there fails it, and the daemons with it.
    expect(unit.Service.Restart).toBeUndefined();
  });

  test("its timeout covers the script's own bounded wait for the device", () => {
    const loop = /for _ in \$\(seq 1 (\d+)\); do[\s\S]*?sleep (\d+)\n\s*done/.exec(dataVolumeScript);
    expect(loop).not.toBeNull();
    const waitSeconds = Number(loop![1]) * Number(loop![2]);
    expect(waitSeconds).toBe(300);
    const timeout = /^(\d+)min$/.exec(unit.Service?.TimeoutStartSec?.[0] ?? "");
    expect(timeout).not.toBeNull();
    // A minute to spare at least, for mkfs, resize2fs and seeding the binds.
    expect(Number(timeout![1]) * 60).toBeGreaterThanOrEqual(waitSeconds + 60);
  });

  test("it starts at every boot after the local filesystems, and before every unit that uses the volume", () => {
    expect(unit.Unit?.After).toEqual(["local-fs.target"]);
    expect(unit.Install?.WantedBy).toEqual(["multi-user.target"]);
    expect(words(unit.Unit.Before).sort()).toEqual(USERS.map((u) => u.unit).sort());
  });
});

describe("the units that use the volume", () => {
  test.each(USERS.map((u) => [u.unit, u.file]))("%s requires the data volume unit and starts after it", (_unit, file) => {
    const u = rendered(file);
    expect(words(u.Unit?.Requires)).toContain(UNIT);
    expect(words(u.Unit?.After)).toContain(UNIT);
  });

  test("no unit or drop-in uses RequiresMountsFor= on the volume's paths (no unit or fstab line declares those mounts, so it would add nothing)", () => {
    const volumePaths = [PRODUCTION_ENV.paths.data, ...DATA_VOLUME_BINDS.map((b) => b.target)];
    const stated = files
      .filter((f) => f.path.startsWith(`${SYSTEMD}/`))
      .flatMap((f) => words(unitSections(f.content).Unit?.RequiresMountsFor).map((path) => ({ file: f.path, path })))
      .filter(({ path }) => volumePaths.some((v) => path === v || path.startsWith(`${v}/`)));
    expect(stated).toEqual([]);
  });

  test("units that keep nothing on the volume do not depend on it", () => {
    const users = new Set(USERS.map((u) => u.file));
    const others = files.filter((f) => f.path.startsWith(`${SYSTEMD}/`) && f.path !== `${SYSTEMD}/${UNIT}` && !users.has(f.path));
    expect(others.map((f) => f.path)).toEqual(expect.arrayContaining([`${SYSTEMD}/${UNITS.rspamd}.d/mailstack.conf`, `${SYSTEMD}/${HOST_SCRIPTS.sync}.service`]));
    for (const f of others) expect({ file: f.path, requires: words(unitSections(f.content).Unit?.Requires) }).toEqual({ file: f.path, requires: [] });
  });
});

describe("one path mounts the volume: the unit", () => {
  test("the bootstrap enables and starts the unit, and waits for it, instead of running the script", () => {
    const lines = commands(bootstrapScript);
    expect(lines).toContain('systemctl enable --now "$MAILSTACK_DATA_VOLUME_UNIT"');
    expect(bootstrapScript).not.toContain("MAILSTACK_DATA_VOLUME_COMMAND");
    expect(defaults.MAILSTACK_DATA_VOLUME_COMMAND).toBeUndefined();
    // Before anything that writes to the volume's paths or starts a daemon.
    const at = (prefix: string) => lines.findIndex((l) => l.startsWith(prefix));
    const enable = at('systemctl enable --now "$MAILSTACK_DATA_VOLUME_UNIT"');
    for (const later of ['chown vmail:vmail "$MAILSTACK_VMAIL"', '"$MAILSTACK_SYNC_COMMAND"', '"$MAILSTACK_CERTIFICATE_COMMAND" --self-signed', 'systemctl enable --now "${boot_start[@]}"']) {
      expect({ later, after: at(later) > enable }).toEqual({ later, after: true });
    }
  });

  test("the script writes no fstab line", () => {
    expect(commands(dataVolumeScript).filter((l) => /fstab/i.test(l))).toEqual([]);
    expect(dataVolumeScript).not.toContain("MAILSTACK_FSTAB");
  });
});
