/**
 * The certificate's life on the host, with the rendered mailstack-certificate script against
 * the real stack (Postfix, Dovecot and nginx): at boot a self-signed or kept certificate for
 * the runtime key; then Let's Encrypt's through certbot, requested with a CSR made from that
 * key for every certificate name, renewed when it nears expiry or the names or key change and
 * only then, and served on every TLS port after the reload.
 *
 * Stand-ins, both on PATH in front of the real tools: `certbot` signs the CSR with a local
 * test CA as `openssl x509 -req`, writing the files `--cert-path`, `--chain-path` and
 * `--fullchain-path` name (and, like certbot, refusing to overwrite one); `systemctl` sends
 * the reloads to this stack's daemons. Both record how they were called.
 */
import { createPublicKey, generateKeyPairSync, X509Certificate } from "node:crypto";
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { certificateNames, type MailConfigInput, spkiSha256 } from "@mailstack/core";
import { minimalConfig } from "../support/fixtures";
import { TestStack } from "../support/stack";
import { requireRoot, requireTools, run, runOk, TOOL_PATH } from "../support/tools";

const input: MailConfigInput = { ...minimalConfig(), extraDomains: ["example.org"] };
let stack: TestStack;
/** Where the stand-ins live, with the test CA and their records of calls. */
let fakebin: string;
let env: Record<string, string>;

beforeAll(async () => {
  stack = await TestStack.start(input, { variant: "unfiltered" });
  fakebin = join(stack.root, "fakebin");
  runOk("mkdir", ["-p", fakebin]);
  runOk("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650", "-subj", "/CN=mailstack test CA", "-keyout", join(fakebin, "ca.key"), "-out", join(fakebin, "ca.pem")]);
  stub(
    "certbot",
    String.raw`dir="$(dirname "$0")"
printf '%s\n' "$*" >> "$dir/certbot-calls"
if [ -e "$dir/certbot-fails" ]; then echo "certbot: the ACME server said no" >&2; exit 1; fi
while [ $# -gt 0 ]; do
  case "$1" in
    --csr) csr="$2"; shift ;;
    --cert-path) cert="$2"; shift ;;
    --chain-path) chain="$2"; shift ;;
    --fullchain-path) fullchain="$2"; shift ;;
  esac
  shift
done
for f in "$cert" "$chain" "$fullchain"; do
  if [ -e "$f" ]; then echo "certbot: $f exists" >&2; exit 1; fi
done
cp "$csr" "$dir/last-csr.pem"
if [ -e "$dir/certbot-wrong-key" ]; then
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout /dev/null -subj /CN=other -out "$dir/other.csr" 2>/dev/null
  csr="$dir/other.csr"
fi
openssl x509 -req -in "$csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -set_serial "$RANDOM$RANDOM" \
  -days "$(cat "$dir/certbot-days" 2>/dev/null || echo 90)" -copy_extensions copy -out "$cert" 2>/dev/null
cp "$dir/ca.pem" "$chain"
cat "$cert" "$chain" > "$fullchain"`,
  );
  stub(
    "systemctl",
    [
      'echo "$*" >> "$(dirname "$0")/systemctl-calls"',
      '[ "$*" = "reload postfix.service dovecot.service nginx.service" ] || exit 1',
      `ip netns exec ${stack.ns} postfix -c ${stack.paths.postfixConfig} reload`,
      `doveadm -c ${stack.dovecotConfig} reload`,
      `ip netns exec ${stack.ns} nginx -c ${stack.nginxConfig} -s reload`,
    ].join("\n"),
  );
  // The script reads what the host's /etc/default/mailstack says, rendered for this stack.
  env = Object.fromEntries(
    [...readFileSync(stack.host.path("/etc/default/mailstack"), "utf8").matchAll(/^(\w+)="(.*)"$/gm)].map((m) => [m[1], m[2]]),
  );
  env.PATH = `${fakebin}:${TOOL_PATH}`;
}, 240000);
afterAll(() => stack?.stop());

function stub(name: string, body: string): void {
  writeFileSync(join(fakebin, name), `#!/bin/bash\nset -euo pipefail\n${body}\n`);
  chmodSync(join(fakebin, name), 0o755);
}

const certificateScript = (...args: string[]) => run(join(stack.paths.sbin, "mailstack-certificate"), args, { env });
const calls = (what: "certbot" | "systemctl") => (existsSync(join(fakebin, `${what}-calls`)) ? readFileSync(join(fakebin, `${what}-calls`), "utf8").split("\n").filter(Boolean) : []);
const runtime = (name: string) => join(stack.paths.runtime, name);
const installed = () => readFileSync(stack.paths.tlsCert, "utf8");
const kept = () => join(stack.paths.certificates, "fullchain.pem");
const names = (pem: string) => (new X509Certificate(pem).subjectAltName ?? "").split(", ").map((n) => n.replace(/^DNS:/, "")).sort();
const wantedNames = () => readFileSync(runtime("certificate-names"), "utf8").split("\n").filter(Boolean).sort();
/** TLSA 3 1 1 data of a certificate or key: the SHA-256 of its SubjectPublicKeyInfo. */
const spki = (pem: string) => spkiSha256(createPublicKey(pem).export({ type: "spki", format: "pem" }).toString());
const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;

const PROBES: [string, string[]][] = [
  ["25 (STARTTLS)", ["-connect", "127.0.0.1:25", "-starttls", "smtp"]],
  ["465", ["-connect", "127.0.0.1:465"]],
  ["587 (STARTTLS)", ["-connect", "127.0.0.1:587", "-starttls", "smtp"]],
  ["993", ["-connect", "127.0.0.1:993"]],
  ["443", ["-connect", "127.0.0.1:443"]],
];

/** Fingerprint of the certificate a port serves, as a client sees it. */
function served(args: string[], servername = stack.config.hostname): string {
  const hello = stack.exec("openssl", ["s_client", ...args, "-servername", servername], "");
  const pem = hello.stdout.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/)?.[0];
  return pem ? fingerprint(pem) : `(no certificate: ${hello.stderr.trim().split("\n").pop()})`;
}

async function expectServedEverywhere(pem: string): Promise<void> {
  const want = fingerprint(pem);
  await stack.until("every port to serve the new certificate", () => PROBES.every(([, args]) => served(args) === want), 30000);
  for (const [port, args] of PROBES) expect({ port, served: served(args) }).toEqual({ port, served: want });
}

/** A certificate from the test CA for the runtime key and names, valid for `days`. */
function issued(days: number): string {
  const dir = join(fakebin, "by-hand");
  runOk("mkdir", ["-p", dir]);
  const san = wantedNames().map((n) => `DNS:${n}`).join(",");
  runOk("openssl", ["req", "-new", "-key", runtime("tls/key.pem"), "-subj", `/CN=${stack.config.hostname}`, "-addext", `subjectAltName=${san}`, "-out", join(dir, "csr.pem")]);
  runOk("openssl", ["x509", "-req", "-in", join(dir, "csr.pem"), "-CA", join(fakebin, "ca.pem"), "-CAkey", join(fakebin, "ca.key"), "-set_serial", String(Date.now()), "-days", String(days), "-copy_extensions", "copy", "-out", join(dir, "cert.pem")]);
  return readFileSync(join(dir, "cert.pem"), "utf8") + readFileSync(join(fakebin, "ca.pem"), "utf8");
}

describe("mailstack-certificate", () => {
  requireTools("openssl", "ip", "nginx", "flock");
  requireRoot("the stack runs in a network namespace of its own");

  test("--self-signed leaves a pair for the runtime key alone, and otherwise makes one with that key for every certificate name", () => {
    const before = installed();
    expect(certificateScript("--self-signed")).toMatchObject({ status: 0 });
    expect(installed()).toBe(before);

    rmSync(stack.paths.tlsCert);
    rmSync(stack.paths.tlsKey);
    const r = certificateScript("--self-signed");
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: `mailstack-certificate: creating a self-signed bootstrap certificate for ${stack.config.hostname}\n` });
    const cert = new X509Certificate(installed());
    expect(cert.issuer).toBe(cert.subject);
    expect(names(installed())).toEqual([...certificateNames(stack.config)].sort());
    expect(spki(installed())).toBe(spki(readFileSync(runtime("tls/key.pem"), "utf8")));
    expect(readFileSync(stack.paths.tlsKey, "utf8")).toBe(readFileSync(runtime("tls/key.pem"), "utf8"));
    expect(statSync(stack.paths.tlsKey).mode & 0o777).toBe(0o600);
    expect(calls("systemctl")).toEqual([]);
  });

  test("the timer's first run has certbot sign a CSR of the runtime key for every name; Postfix, Dovecot and nginx serve the result", async () => {
    const r = certificateScript();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`requesting a certificate for ${[...certificateNames(stack.config)].sort().join(" ")}: there is none yet`);
    expect(r.stderr).toMatch(/installed the certificate valid until .*; reloaded Postfix, Dovecot and nginx/);

    const [call, ...more] = calls("certbot");
    expect(more).toEqual([]);
    expect(call).toMatch(/^certonly --standalone --non-interactive --agree-tos --email postmaster@example\.com --csr \S+ --cert-path \S+ --chain-path \S+ --fullchain-path \S+$/);
    const csr = join(fakebin, "last-csr.pem");
    runOk("openssl", ["req", "-in", csr, "-noout", "-verify"]);
    expect(spki(runOk("openssl", ["req", "-in", csr, "-noout", "-pubkey"]).stdout)).toBe(spki(readFileSync(runtime("tls/key.pem"), "utf8")));
    const csrNames = runOk("openssl", ["req", "-in", csr, "-noout", "-text"]).stdout.match(/Subject Alternative Name:\s*\n\s*(.*)/)?.[1];
    expect(csrNames?.split(", ").map((n) => n.replace(/^DNS:/, "")).sort()).toEqual([...certificateNames(stack.config)].sort());

    const pem = installed();
    expect(new X509Certificate(pem).issuer).toBe("CN=mailstack test CA");
    expect(pem).toBe(readFileSync(kept(), "utf8"));
    // The TLSA 3 1 1 record Pulumi publishes is this hash of the key it keeps.
    expect(spki(pem)).toBe(spki(readFileSync(runtime("tls/key.pem"), "utf8")));
    expect(readdirSync(stack.paths.certificates).sort()).toEqual(["fullchain.pem", "lock"]);
    expect(calls("systemctl")).toEqual(["reload postfix.service dovecot.service nginx.service"]);
    await expectServedEverywhere(pem);

    // nginx presents it, chained to the CA, for every web name.
    const ca = readFileSync(join(fakebin, "ca.pem"), "utf8");
    for (const domain of stack.config.domains) {
      for (const name of [`mta-sts.${domain}`, `autoconfig.${domain}`, `autodiscover.${domain}`]) {
        const response = await stack.http({ servername: name, path: "/.well-known/mta-sts.txt", ca });
        expect({ name, status: response.status, error: response.error }).toEqual({ name, status: 200, error: undefined });
      }
    }
  });

  test("a fresh certificate for the same names and key is left alone: no certbot, no reload", () => {
    const before = installed();
    // Only the order of the names differs.
    writeFileSync(runtime("certificate-names"), `${wantedNames().reverse().join("\n")}\n`);
    expect(certificateScript()).toMatchObject({ status: 0, stderr: "" });
    expect(calls("certbot")).toHaveLength(1);
    expect(calls("systemctl")).toHaveLength(1);
    expect(installed()).toBe(before);
  });

  test("renewal starts when the certificate has less than 30 days left, and not with 31", async () => {
    writeFileSync(kept(), issued(31));
    expect(certificateScript()).toMatchObject({ status: 0 });
    expect(calls("certbot")).toHaveLength(1);
    // Not renewed, but installed, since it is not what the daemons had.
    expect(installed()).toBe(readFileSync(kept(), "utf8"));

    writeFileSync(kept(), issued(29));
    const r = certificateScript();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(": it expires within 30 days\n");
    expect(calls("certbot")).toHaveLength(2);
    const pem = installed();
    expect(new X509Certificate(pem).validToDate.getTime()).toBeGreaterThan(Date.now() + 80 * 86400000);
    await expectServedEverywhere(pem);
  });

  test("a changed name list (a domain added) brings a certificate for the new names", async () => {
    writeFileSync(runtime("certificate-names"), `${[...certificateNames(stack.config), "mta-sts.example.net"].join("\n")}\n`);
    const r = certificateScript();
    expect(r.stderr).toContain(": the names changed\n");
    expect(r.status).toBe(0);
    expect(calls("certbot")).toHaveLength(3);
    expect(names(installed())).toEqual([...certificateNames(stack.config), "mta-sts.example.net"].sort());
    await expectServedEverywhere(installed());
  });

  test("when certbot fails or hands back a certificate for another key, the installed certificate stays and the run fails", () => {
    const before = installed();
    const reloads = calls("systemctl").length;
    writeFileSync(runtime("certificate-names"), `${certificateNames(stack.config).join("\n")}\n`);
    for (const [flag, message] of [
      ["certbot-fails", "certbot failed (do the names resolve to this host?); the installed certificate stays"],
      ["certbot-wrong-key", "certbot's certificate does not match the key and names; the installed certificate stays"],
    ]) {
      writeFileSync(join(fakebin, flag), "");
      const r = certificateScript();
      rmSync(join(fakebin, flag));
      expect({ flag, status: r.status, said: r.stderr.includes(message) }).toEqual({ flag, status: 1, said: true });
      expect(installed()).toBe(before);
      expect(readFileSync(kept(), "utf8")).toBe(before);
      expect(readdirSync(stack.paths.certificates).sort()).toEqual(["fullchain.pem", "lock"]);
    }
    expect(calls("systemctl")).toHaveLength(reloads);
  });

  test("a new key from Pulumi brings a certificate for it, installed with the key", async () => {
    const key = generateKeyPairSync("ec", { namedCurve: "P-256", privateKeyEncoding: { type: "sec1", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });
    writeFileSync(runtime("tls/key.pem"), key.privateKey, { mode: 0o600 });
    const r = certificateScript();
    expect(r.stderr).toContain(": the key changed\n");
    expect(r.status).toBe(0);
    expect(readFileSync(stack.paths.tlsKey, "utf8")).toBe(key.privateKey);
    expect(spki(installed())).toBe(spkiSha256(key.publicKey));
    expect(names(installed())).toEqual([...certificateNames(stack.config)].sort());
    await expectServedEverywhere(installed());
  });

  test("on a replacement instance, --self-signed installs the certificate kept on the data volume", () => {
    rmSync(stack.paths.tlsCert);
    rmSync(stack.paths.tlsKey);
    const r = certificateScript("--self-signed");
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/^mailstack-certificate: installed the certificate kept on the data volume, valid until /);
    expect(installed()).toBe(readFileSync(kept(), "utf8"));
    expect(readFileSync(stack.paths.tlsKey, "utf8")).toBe(readFileSync(runtime("tls/key.pem"), "utf8"));
  });
});
