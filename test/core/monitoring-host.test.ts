// The host's side of monitoring as the core renders it: the metrics timer and the log
// shipper's unit, and the settings that tell them CloudWatch's names, which are the stack's.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULTS_FILE, FAILURE_TAG, HOST_HEALTH_PARAMETER, HOST_METRICS, HOST_SCRIPTS, hostFiles, logGroupName, METRIC_DIMENSION, METRIC_NAMESPACE, parseConfig, PRODUCTION_ENV, UNITS } from "@mailstack/core";
import { fullConfig } from "../support/fixtures";
import { unitSections } from "../support/unit-file";

const PARAMS = { region: "eu-west-1", ssmPath: "/mailstack/prod/mail", dataVolumeId: "vol-0123456789abcdef0", backupRepository: "s3:https://s3.eu-west-1.amazonaws.com/b/restic" };
const files = hostFiles(parseConfig(fullConfig()), PARAMS);
const SYSTEMD = "/etc/systemd/system";
const rendered = (path: string) => unitSections(files.find((f) => f.path === path)?.content ?? "");
const defaults = Object.fromEntries([...files.find((f) => f.path === DEFAULTS_FILE)!.content.matchAll(/^([A-Z_0-9]+)="(.*)"$/gm)].map((m) => [m[1], m[2]]));
const metricsScript = readFileSync(join(__dirname, "..", "..", "packages", "core", "scripts", "mailstack-metrics.py"), "utf8");

test("the settings carry the stack's names: namespace, dimension, every metric with its unit, the health parameter and the log group", () => {
  expect(defaults.MAILSTACK_METRIC_NAMESPACE).toBe(METRIC_NAMESPACE);
  expect(defaults.MAILSTACK_METRIC_DIMENSION).toBe(METRIC_DIMENSION);
  expect(defaults.MAILSTACK_METRICS.split(" ")).toEqual(Object.entries(HOST_METRICS).map(([key, m]) => `${key}=${m.name}:${m.unit}`));
  expect(defaults.MAILSTACK_HEALTH_PARAMETER).toBe(`${PARAMS.ssmPath}/${HOST_HEALTH_PARAMETER}`);
  expect(defaults.MAILSTACK_LOG_GROUP).toBe(logGroupName(PARAMS.ssmPath));
  expect(defaults.MAILSTACK_LOG_CURSOR).toBe(`${PRODUCTION_ENV.paths.state}/log-cursor`);
  expect(defaults.MAILSTACK_POSTFIX_QUEUE).toBe(PRODUCTION_ENV.paths.postfixQueue);
  expect(defaults.MAILSTACK_ALERT_COMMAND).toBe(`${PRODUCTION_ENV.paths.sbin}/${HOST_SCRIPTS.alert}`);
  expect(defaults.MAILSTACK_FAILURE_TAG).toBe(FAILURE_TAG);
});

test("the metrics script measures every metric the stack watches, by key", () => {
  const values = /^ {4}values = \{\n([\s\S]*?)\n {4}\}$/m.exec(metricsScript)![1];
  const measured = [...values.matchAll(/^ {8}"(\w+)": /gm)].map((m) => m[1]);
  expect(measured.sort()).toEqual(Object.keys(HOST_METRICS).sort());
});

test("the metrics run every five minutes on the clock, alert on failure, and a retry (75) is no failure", () => {
  const timer = rendered(`${SYSTEMD}/${HOST_SCRIPTS.metrics}.timer`);
  expect(timer.Timer).toEqual({ OnCalendar: ["*:0/5:30"], AccuracySec: ["5s"] });
  const service = rendered(`${SYSTEMD}/${HOST_SCRIPTS.metrics}.service`);
  expect(service.Service).toEqual({ Type: ["oneshot"], EnvironmentFile: [DEFAULTS_FILE], ExecStart: [`${PRODUCTION_ENV.paths.sbin}/${HOST_SCRIPTS.metrics}`], SuccessExitStatus: ["75"] });
  expect(defaults.MAILSTACK_BOOT_START.split(" ")).toContain(`${HOST_SCRIPTS.metrics}.timer`);
});

test("the log shipper runs for the host's life, knows its own unit, and a new script or unit restarts it", () => {
  const unit = `${HOST_SCRIPTS.logs}.service`;
  const service = rendered(`${SYSTEMD}/${unit}`);
  expect(service.Service).toEqual({ Type: ["simple"], EnvironmentFile: [DEFAULTS_FILE], ExecStart: [`${PRODUCTION_ENV.paths.sbin}/${HOST_SCRIPTS.logs} --unit %n`], Restart: ["always"], RestartSec: ["30s"] });
  expect(service.Install).toEqual({ WantedBy: ["multi-user.target"] });
  expect(defaults.MAILSTACK_BOOT_START.split(" ")).toContain(unit);
  for (const path of [`${SYSTEMD}/${unit}`, `${PRODUCTION_ENV.paths.sbin}/${HOST_SCRIPTS.logs}`]) expect(files.find((f) => f.path === path)!.reload).toEqual([unit]);
  // The daemons' own output and mailstack's units, besides the mail and auth facilities.
  expect(defaults.MAILSTACK_LOG_UNITS.split(" ")).toEqual(expect.arrayContaining([UNITS.postfixInstance, UNITS.dovecot, UNITS.rspamd, `${HOST_SCRIPTS.sync}.service`, `${HOST_SCRIPTS.backup}.service`, unit]));
});

test("rspamd logs to the journal with the mail facility", () => {
  expect(files.find((f) => f.path === `${PRODUCTION_ENV.paths.rspamdLocal}/logging.inc`)!.content).toMatch(/^type = "syslog";\nfacility = "LOG_MAIL";\n$/m);
});
