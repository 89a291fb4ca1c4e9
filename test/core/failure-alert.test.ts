// A failed backup, certificate run or sync does more than rewrite a status file: its unit's
// OnFailure= starts a unit that mails the postmaster and logs one line under a fixed tag, which
// monitoring counts.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULTS_FILE, FAILURE_TAG, HOST_SCRIPTS, hostFiles, parseConfig, PRODUCTION_ENV, SENDMAIL } from "@mailstack/core";
import { fullConfig } from "../support/fixtures";
import { unitSections } from "../support/unit-file";

const PARAMS = { region: "eu-west-1", ssmPath: "/mailstack/prod/mail", dataVolumeId: "vol-0123456789abcdef0", backupRepository: "s3:https://s3.eu-west-1.amazonaws.com/b/restic" };
const files = hostFiles(parseConfig(fullConfig()), PARAMS);
const SYSTEMD = "/etc/systemd/system";
const TEMPLATE = `${HOST_SCRIPTS.alert}@.service`;
const rendered = (path: string) => unitSections(files.find((f) => f.path === path)?.content ?? "");
const defaults = Object.fromEntries([...files.find((f) => f.path === DEFAULTS_FILE)!.content.matchAll(/^([A-Z_0-9]+)="(.*)"$/gm)].map((m) => [m[1], m[2]]));

// The certificate: a renewal that keeps failing ends in an expired certificate; the sync: a
// host that keeps refusing bundles or keys never gets the stack's changes.
test.each([HOST_SCRIPTS.backup, HOST_SCRIPTS.certificate, HOST_SCRIPTS.sync, HOST_SCRIPTS.metrics, HOST_SCRIPTS.logs])("the %s unit names the alert template, instantiated with its own name", (name) => {
  const unit = rendered(`${SYSTEMD}/${name}.service`);
  expect(unit.Unit.OnFailure).toEqual([`${HOST_SCRIPTS.alert}@%n.service`]);
  expect(files.map((f) => f.path)).toContain(`${SYSTEMD}/${TEMPLATE}`);
});

test("the template runs the installed alert script with the failed unit's name, with the settings file, once", () => {
  const template = rendered(`${SYSTEMD}/${TEMPLATE}`);
  expect(template.Service).toEqual({ Type: ["oneshot"], EnvironmentFile: [DEFAULTS_FILE], ExecStart: [`${PRODUCTION_ENV.paths.sbin}/${HOST_SCRIPTS.alert} %i`] });
  // Started by a failure only: nothing enables it, and its own failure starts nothing (no loop).
  expect(template.Install).toBeUndefined();
  expect(template.Unit.OnFailure).toBeUndefined();
  const script = files.find((f) => f.path === `${PRODUCTION_ENV.paths.sbin}/${HOST_SCRIPTS.alert}`)!;
  expect({ mode: script.mode, content: script.content }).toEqual({ mode: "0755", content: readFileSync(join(__dirname, "..", "..", "packages", "core", "scripts", "mailstack-alert.sh"), "utf8") });
  // The systemd checker's globs take the template in: a broken one refuses the bundle.
  expect(files.find((f) => f.path === `${SYSTEMD}/${TEMPLATE}`)!.check).toBe("systemd");
});

test("the settings give the alert its tag, the host name and Postfix's sendmail", () => {
  expect(defaults.MAILSTACK_FAILURE_TAG).toBe(FAILURE_TAG);
  expect(defaults.MAILSTACK_SENDMAIL).toBe(SENDMAIL);
  expect(SENDMAIL).toBe("/usr/sbin/sendmail");
  expect(defaults.MAILSTACK_HOSTNAME).toBe("mail.example.com");
  // A tag of its own, not a program's name: the count is of failures, not of every line the script prints.
  expect(Object.values(HOST_SCRIPTS)).not.toContain(FAILURE_TAG);
});
