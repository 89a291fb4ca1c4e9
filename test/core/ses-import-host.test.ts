// The host's side of the SES safety net as the core renders it: with sesInbound, the importer's
// script, a oneshot service its timer runs, and the settings that tell it where SES keeps the
// mail and where Postfix takes it; without, none of it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULTS_FILE, HOST_SCRIPTS, hostFiles, type HostParams, type MailConfigInput, parseConfig, PRODUCTION_ENV, SES_INBOUND_PREFIX, SES_REJECTED_PREFIX, UNITS } from "@mailstack/core";
import { fullConfig } from "../support/fixtures";
import { unitSections } from "../support/unit-file";

const PARAMS: HostParams = { region: "eu-west-1", ssmPath: "/mailstack/prod/mail", dataVolumeId: "vol-0123456789abcdef0", backupRepository: "s3:https://s3.eu-west-1.amazonaws.com/b/restic" };
const INBOUND: MailConfigInput = { ...fullConfig(), sesInbound: true, sesRegion: "eu-west-2" };
const SYSTEMD = "/etc/systemd/system";
const NAME = HOST_SCRIPTS.sesImport;

const render = (input: MailConfigInput, params: HostParams = { ...PARAMS, sesInboundBucket: "mail-inbound" }) => hostFiles(parseConfig(input), params);
const settings = (files: ReturnType<typeof render>) =>
  Object.fromEntries([...files.find((f) => f.path === DEFAULTS_FILE)!.content.matchAll(/^([A-Z_0-9]+)="(.*)"$/gm)].map((m) => [m[1], m[2]]));
const paths = (files: ReturnType<typeof render>) => files.map((f) => f.path);

const files = render(INBOUND);
const defaults = settings(files);
const rendered = (path: string) => unitSections(files.find((f) => f.path === path)?.content ?? "");

test("without sesInbound the host has no importer, no timer for it and no SES settings", () => {
  for (const input of [fullConfig(), { ...fullConfig(), sesOutbound: true, sesRegion: "eu-west-1" }]) {
    const plain = render(input, PARAMS);
    expect(paths(plain).filter((p) => p.includes(NAME))).toEqual([]);
    expect(Object.keys(settings(plain)).filter((k) => k.startsWith("MAILSTACK_SES_"))).toEqual([]);
    expect(settings(plain).MAILSTACK_BOOT_START).not.toContain(NAME);
  }
});

test("sesInbound without the bucket's name is refused, naming the parameter", () => {
  expect(() => render(INBOUND, PARAMS)).toThrow("HostParams.sesInboundBucket");
});

test("the settings name the bucket, SES's region, the core's prefixes, the import port and the record", () => {
  expect(defaults).toMatchObject({
    MAILSTACK_SES_BUCKET: "mail-inbound",
    MAILSTACK_SES_REGION: "eu-west-2",
    MAILSTACK_SES_INBOUND_PREFIX: SES_INBOUND_PREFIX,
    MAILSTACK_SES_REJECTED_PREFIX: SES_REJECTED_PREFIX,
    MAILSTACK_SES_IMPORT_PORT: String(PRODUCTION_ENV.ports.sesImport),
    MAILSTACK_SES_IMPORT_STATE: `${PRODUCTION_ENV.paths.state}/ses-import.json`,
  });
});

test("the script is installed as it ships, and run by a oneshot service that alerts on failure and takes 75 for a retry", () => {
  const script = files.find((f) => f.path === `${PRODUCTION_ENV.paths.sbin}/${NAME}`)!;
  expect({ mode: script.mode, content: script.content }).toEqual({ mode: "0755", content: readFileSync(join(__dirname, "..", "..", "packages", "core", "scripts", "mailstack-ses-import.py"), "utf8") });
  const service = rendered(`${SYSTEMD}/${NAME}.service`);
  expect(service.Unit.OnFailure).toEqual([`${HOST_SCRIPTS.alert}@%n.service`]);
  expect(service.Unit.After).toEqual([`network-online.target ${UNITS.postfixInstance}`]);
  expect(service.Service).toMatchObject({
    Type: ["oneshot"],
    EnvironmentFile: [DEFAULTS_FILE],
    ExecStart: [`${PRODUCTION_ENV.paths.sbin}/${NAME}`],
    SuccessExitStatus: ["75"],
    // Sandboxed: nothing to write but its record, no capabilities.
    ProtectSystem: ["strict"],
    ReadWritePaths: [PRODUCTION_ENV.paths.state],
    CapabilityBoundingSet: [""],
    NoNewPrivileges: ["yes"],
  });
  expect(service.Install).toBeUndefined();
  for (const unit of [`${NAME}.service`, `${NAME}.timer`]) expect(files.find((f) => f.path === `${SYSTEMD}/${unit}`)!.check).toBe("systemd");
});

test("the timer runs it soon after a boot and every five minutes, is started by the bootstrap and restarted by a new bundle", () => {
  const timer = rendered(`${SYSTEMD}/${NAME}.timer`);
  expect(timer.Timer).toEqual({ OnBootSec: ["2min"], OnUnitActiveSec: ["5min"] });
  expect(timer.Install).toEqual({ WantedBy: ["timers.target"] });
  expect(files.find((f) => f.path === `${SYSTEMD}/${NAME}.timer`)!.reload).toEqual([`${NAME}.timer`]);
  expect(defaults.MAILSTACK_BOOT_START.split(" ")).toContain(`${NAME}.timer`);
  // Its lines reach CloudWatch Logs with the other mailstack units'.
  expect(defaults.MAILSTACK_LOG_UNITS.split(" ")).toContain(`${NAME}.service`);
});
