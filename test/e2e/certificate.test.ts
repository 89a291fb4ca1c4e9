/**
 * A renewed certificate reaches clients: certbot's deploy hook (the rendered
 * mailstack-certificate --deploy) installs it and reloads Postfix and Dovecot, which then
 * serve it on every TLS port without a restart. The daemons are real; only systemctl is
 * stood in for, by a script that sends the same reloads to the stack's daemons.
 */
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { minimalConfig } from "../support/fixtures";
import { TestStack } from "../support/stack";
import { run, runOk, selfSignedPair, TOOL_PATH } from "../support/tools";

let stack: TestStack;
beforeAll(async () => {
  stack = await TestStack.start(minimalConfig(), { variant: "unfiltered" });
}, 240000);
afterAll(() => stack?.stop());

const PROBES: [string, string[]][] = [
  ["465", ["-connect", "127.0.0.1:465"]],
  ["587 (STARTTLS)", ["-connect", "127.0.0.1:587", "-starttls", "smtp"]],
  ["993", ["-connect", "127.0.0.1:993"]],
];

/** SHA-256 fingerprint of the certificate a port serves, as a client sees it. */
function served(args: string[]): string {
  const hello = stack.exec("openssl", ["s_client", ...args, "-servername", stack.config.hostname], "");
  const pem = hello.stdout.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/)?.[0];
  if (!pem) return `(no certificate: ${hello.stderr.trim().split("\n").pop()})`;
  return fingerprint(pem);
}

function fingerprint(pem: string): string {
  return runOk("openssl", ["x509", "-noout", "-fingerprint", "-sha256"], { input: pem }).stdout.trim();
}

function certificateScript(args: string[], extraEnv: Record<string, string> = {}) {
  const env = stack.host.env;
  return run(join(env.paths.sbin, "mailstack-certificate"), args, {
    env: {
      MAILSTACK_HOSTNAME: stack.config.hostname,
      MAILSTACK_TLS_CERT: env.paths.tlsCert,
      MAILSTACK_TLS_KEY: env.paths.tlsKey,
      MAILSTACK_LETSENCRYPT: join(stack.root, "etc/letsencrypt"),
      PATH: `${join(stack.root, "fakebin")}:${TOOL_PATH}`,
      ...extraEnv,
    },
  });
}

test("the bootstrap certificate is served on 465, 587 and 993, and --self-signed leaves an existing one alone", () => {
  const current = fingerprint(readFileSync(stack.host.env.paths.tlsCert, "utf8"));
  for (const [, args] of PROBES) expect(served(args)).toBe(current);
  const r = certificateScript(["--self-signed"]);
  expect(r.status).toBe(0);
  expect(fingerprint(readFileSync(stack.host.env.paths.tlsCert, "utf8"))).toBe(current);
});

test("certbot's deploy hook installs a renewed certificate, and Postfix and Dovecot serve it after their reload", async () => {
  const before = fingerprint(readFileSync(stack.host.env.paths.tlsCert, "utf8"));
  // What systemctl reload does on the host, aimed at this stack's daemons; it records the call.
  const fakebin = join(stack.root, "fakebin");
  mkdirSync(fakebin, { recursive: true });
  writeFileSync(
    join(fakebin, "systemctl"),
    [
      "#!/bin/bash",
      'echo "$*" >> "$(dirname "$0")/calls"',
      '[ "$*" = "reload postfix.service dovecot.service" ] || exit 1',
      `ip netns exec ${stack.ns} postfix -c ${stack.paths.postfixConfig} reload`,
      `doveadm -c ${stack.dovecotConfig} reload`,
      "",
    ].join("\n"),
  );
  chmodSync(join(fakebin, "systemctl"), 0o755);

  // A renewed lineage as certbot leaves it in /etc/letsencrypt/live/<host>.
  const lineage = join(stack.root, "etc/letsencrypt/live", stack.config.hostname);
  selfSignedPair(join(lineage, "fullchain.pem"), join(lineage, "privkey.pem"), stack.config.hostname);
  const renewed = fingerprint(readFileSync(join(lineage, "fullchain.pem"), "utf8"));
  expect(renewed).not.toBe(before);

  const r = certificateScript(["--deploy"], { RENEWED_LINEAGE: lineage });
  expect({ status: r.status, stderr: r.stderr }).toMatchObject({ status: 0, stderr: expect.stringContaining("installed the certificate") });
  expect(readFileSync(join(fakebin, "calls"), "utf8")).toBe("reload postfix.service dovecot.service\n");
  expect(fingerprint(readFileSync(stack.host.env.paths.tlsCert, "utf8"))).toBe(renewed);
  expect(statSync(stack.host.env.paths.tlsKey).mode & 0o777).toBe(0o600);

  await stack.until("every port to serve the renewed certificate", () => PROBES.every(([, args]) => served(args) === renewed), 30000);
  for (const [port, args] of PROBES) expect({ port, served: served(args) }).toEqual({ port, served: renewed });
});
