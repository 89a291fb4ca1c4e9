/**
 * `mailstack check` end to end, as the compiled command: the plan's zones (and a reverse zone,
 * and two DNSBL zones) served by Knot DNS on loopback, the real daemons of a TestStack
 * (Postfix on 25/465/587, Dovecot on 993, nginx on 443) reached through a bridge into the
 * stack's namespace, and the host's reports in the SSM stand-in. All green first; then one
 * fault at a time, each red (or amber) on its own line with nothing else changing.
 */
import { spawn } from "node:child_process";
import { createPublicKey, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { dkimPublicKeyFromPem, dnsRecords, dnsZones, type MailConfigInput, parseConfig, spkiSha256, txtContent, zoneFile } from "@mailstack/core";
import { AuthoritativeDns } from "../support/dns-server";
import { FakeSsm, fakeAwsEnv } from "../support/fake-aws";
import { NetnsBridge } from "../support/netns-bridge";
import { HOST_IP, TestStack } from "../support/stack";
import { requireRoot, requireTools, runOk } from "../support/tools";

const ROOT = join(__dirname, "..", "..");
const CLI = join(ROOT, "packages", "cli", "dist", "main.js");
const PARAMETER_PATH = "/mailstack/test/mail";
const BUNDLE = "ab".repeat(32);
const OTHER_BUNDLE = "cd".repeat(32);
const ZEN = "zen.dnsbl.test";
const DBL = "dbl.dnsbl.test";
const REVERSE_ZONE = "2.0.192.in-addr.arpa";

/** Two mail domains and POP3 (SRV both ways); DNSSEC for the TLSA record. */
const input: MailConfigInput = {
  domain: "example.com",
  extraDomains: ["example.org"],
  mailboxes: [{ address: "alice@example.com", password: "correct horse battery staple" }],
  pop3: true,
};

interface CheckRun {
  status: number | null;
  stdout: string;
  stderr: string;
  json?: { ok: boolean; summary: Record<string, number>; checks: { id: string; check: string; status: string; expected: string; found: string }[] };
}

let stack: TestStack;
let bridge: NetnsBridge;
let ssm: FakeSsm;
let work: string;
let outputsFile: string;
let caFile: string;
/** Zone name → zone file text, as the plan exports them, plus the reverse and DNSBL zones. */
let zones: Record<string, string>;
let dns: AuthoritativeDns;

function soa(zone: string, body: string[] = []): string {
  return [`$ORIGIN ${zone}.`, "$TTL 300", `@ IN SOA ns1.${zone}. hostmaster.${zone}. ( 1 7200 3600 1209600 300 )`, `@ IN NS ns1.${zone}.`, `ns1 IN A 192.0.2.53`, ...body, ""].join("\n");
}

/** Runs the command with the test's resolver, ports and CA; the JSON report parsed when asked for. */
function mailstackCheck(args: string[], options: { server?: AuthoritativeDns; env?: Record<string, string>; stdin?: string } = {}): Promise<CheckRun> {
  const server = options.server ?? dns;
  const all = ["check", "--outputs", outputsFile, "--resolver", `127.0.0.1:${server.port}`, "--connect", "127.0.0.1", ...bridge.portArgs(), "--ca", caFile, "--dnsbl-zone", ZEN, "--dbl-zone", DBL, "--timeout", "5", ...args];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...all], { env: { ...fakeAwsEnv(work), AWS_REGION: "us-east-1", AWS_ENDPOINT_URL_SSM: ssm.endpoint, PATH: process.env.PATH ?? "", ...options.env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.stdin.end(options.stdin ?? "");
    child.on("close", (status) => {
      let json;
      if (args.includes("--json")) json = JSON.parse(stdout);
      resolve({ status, stdout, stderr, json });
    });
  });
}

/** The checks that are not ok, as id → status. */
const notOk = (run: CheckRun) => Object.fromEntries(run.json!.checks.filter((c) => c.status !== "ok").map((c) => [c.id, c.status]));
const line = (run: CheckRun, id: string) => run.json!.checks.find((c) => c.id === id)!;

/** Knot serving the zones with `change` applied to a copy, for the length of `fn`. */
async function withZones<T>(change: (z: Record<string, string>) => void, fn: (server: AuthoritativeDns) => Promise<T>): Promise<T> {
  const copy = { ...zones };
  change(copy);
  const server = await AuthoritativeDns.start(copy);
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

function report(key: string, value: unknown): void {
  ssm.parameters.set(`${PARAMETER_PATH}/status/${key}`, JSON.stringify(value));
}
const freshHealth = () => ({ at: new Date().toISOString(), queueActive: 0, queueDeferred: 1, hoursSinceBackup: 3.5, certificateDaysLeft: 80.5, dataVolumeUsedPercent: 12, futureField: "ignored" });
const applied = (sha: string) => ({ running: sha, attempted: sha, result: "applied", reason: null, at: new Date().toISOString() });

describe("mailstack check against the real daemons and a real DNS server", () => {
  requireTools("knotd", "dig", "ip", "openssl", "nginx", "nft");
  requireRoot("the stack runs in a network namespace of its own");

  beforeAll(async () => {
    stack = await TestStack.start(input, { variant: "unfiltered" });
    work = mkdtempSync("/tmp/ms-check-");
    // The stack starts without DNSSEC (its records would need the TLS key's hash before it
    // exists); DNSSEC changes only the published records and Postfix's outbound DANE, so the
    // plan here is the same config with DNSSEC on: its TLSA names the key the stack serves.
    const config = parseConfig({ ...input, dnssec: true });
    const dkimPublicKeys = Object.fromEntries(Object.entries(stack.dkimKeys).map(([s, k]) => [s, dkimPublicKeyFromPem(k.publicKey)]));
    const tlsKeySha256 = spkiSha256(createPublicKey(readFileSync(stack.paths.tlsKey, "utf8")).export({ type: "spki", format: "pem" }).toString());
    const records = dnsRecords(config, { ipv4: HOST_IP, dkimPublicKeys, tlsKeySha256 });
    zones = Object.fromEntries(dnsZones(config).map((z) => [z, zoneFile(z, records)]));
    zones[REVERSE_ZONE] = soa(REVERSE_ZONE, [`25 IN PTR ${config.hostname}.`]);
    zones[ZEN] = soa(ZEN);
    zones[DBL] = soa(DBL);
    dns = await AuthoritativeDns.start(zones);
    outputsFile = join(work, "outputs.json");
    writeFileSync(outputsFile, JSON.stringify({ hostname: config.hostname, publicIp: HOST_IP, dnsRecords: records, hostBundleSha256: BUNDLE, parameterPath: PARAMETER_PATH, nextSteps: "…" }));
    // The bootstrap certificate is self-signed for every name; the expired one of a fault comes from a CA of the test's.
    runOk("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30", "-subj", "/CN=mailstack check test CA", "-keyout", join(work, "ca.key"), "-out", join(work, "ca.pem")]);
    caFile = join(work, "trusted.pem");
    writeFileSync(caFile, readFileSync(stack.paths.tlsCert, "utf8") + readFileSync(join(work, "ca.pem"), "utf8"));
    bridge = await NetnsBridge.start(stack.ns, [25, 465, 587, 993, 443]);
    ssm = new FakeSsm();
    await ssm.start();
    report("host-bundle", applied(BUNDLE));
    report("health", freshHealth());
  }, 240000);

  afterAll(async () => {
    await bridge?.stop();
    await dns?.stop();
    await ssm?.stop();
    await stack?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("all green: every planned record, the PTR, the policy, the four ports, the certificate, DANE, DNSBLs and the host's reports", async () => {
    const run = await mailstackCheck(["--json", "--status"]);
    expect({ status: run.status, notOk: notOk(run), stderr: run.stderr }).toEqual({ status: 0, notOk: {}, stderr: "" });
    const ids = run.json!.checks.map((c) => c.id);
    for (const id of ["dns:MX:example.com", "dns:TXT:mail._domainkey.example.org", "dns:TLSA:_25._tcp.mail.example.com", "dns:CAA:mail.example.com", "dns:SRV:_pop3._tcp.example.org", "ptr:192.0.2.25"]) expect(ids).toContain(id);
    expect(ids).toEqual(expect.arrayContaining(["mta-sts:policy:example.com", "mta-sts:policy:example.org", "port:25", "port:465", "port:587", "port:993", "tls:certificate", "tls:dane"]));
    expect(ids).toEqual(expect.arrayContaining(["dnsbl:zen:192.0.2.25", "dnsbl:dbl:example.com", "dnsbl:dbl:example.org", "host:bundle", "host:health", "host:queue", "host:backup", "host:certificate"]));
    expect(line(run, "dns:TXT:example.com:spf-example.com").found).toBe("v=spf1 mx -all");
    expect(line(run, "tls:certificate").found).toMatch(/^valid until \d{4}-\d\d-\d\d, \d+ days left$/);
    expect(line(run, "port:25").found).toMatch(/^TLSv1\.[23], 220 mail\.example\.com/);
    expect(line(run, "port:993").found).toMatch(/^TLSv1\.[23], \* OK/);
    expect(line(run, "host:queue").found).toBe("0 active, 1 deferred");
    expect(run.json!.summary).toEqual({ ok: run.json!.checks.length, warn: 0, fail: 0 });
  });

  test("the table: one line per check, and the outputs read from stdin", async () => {
    const run = await mailstackCheck(["--outputs", "-"], { stdin: readFileSync(outputsFile, "utf8") });
    expect(run.status).toBe(0);
    const lines = run.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^STATUS\s+CHECK\s+EXPECTED\s+FOUND$/);
    expect(lines.at(-1)).toMatch(/^\d+ ok, 0 warn, 0 fail: passed$/);
    expect(run.stdout).toMatch(/^OK\s+TXT mail\._domainkey\.example\.com\s+v=DKIM1; k=rsa; p=MII.*…/m);
  });

  test("DKIM record removed: that record fails, nothing else", async () => {
    const run = await withZones(
      (z) => (z["example.com"] = z["example.com"].replace(/^mail\._domainkey\.example\.com\. .*\n/m, "")),
      (server) => mailstackCheck(["--json"], { server }),
    );
    expect({ status: run.status, notOk: notOk(run) }).toEqual({ status: 1, notOk: { "dns:TXT:mail._domainkey.example.com": "fail" } });
    expect(line(run, "dns:TXT:mail._domainkey.example.com").found).toBe("nothing (NXDOMAIN: the name does not exist)");
  });

  test("a DKIM key that is not the planned one, and a second SPF record: each fails on its line", async () => {
    const run = await withZones(
      (z) => {
        z["example.org"] = z["example.org"].replace(/p=MII[^"]{20}/, (m) => `${m.slice(0, -4)}AAAA`);
        z["example.com"] += `example.com. 3600 IN TXT ${txtContent("v=spf1 include:other.example -all")}\nexample.com. 3600 IN TXT "google-site-verification=abc"\n`;
      },
      (server) => mailstackCheck(["--json"], { server }),
    );
    expect({ status: run.status, notOk: notOk(run) }).toEqual({ status: 1, notOk: { "dns:TXT:mail._domainkey.example.org": "fail", "dns:TXT:example.com:spf-example.com": "fail" } });
    expect(line(run, "dns:TXT:mail._domainkey.example.org").found).toMatch(/^missing v=DKIM1.*; not planned v=DKIM1/);
    expect(line(run, "dns:TXT:example.com:spf-example.com").found).toMatch(/^2 SPF records/);
  });

  test("a wrong PTR fails the reverse-DNS line only", async () => {
    const run = await withZones(
      (z) => (z[REVERSE_ZONE] = soa(REVERSE_ZONE, ["25 IN PTR ec2-192-0-2-25.compute-1.amazonaws.com."])),
      (server) => mailstackCheck(["--json"], { server }),
    );
    expect({ status: run.status, notOk: notOk(run) }).toEqual({ status: 1, notOk: { "ptr:192.0.2.25": "fail" } });
    expect(line(run, "ptr:192.0.2.25").found).toBe("ec2-192-0-2-25.compute-1.amazonaws.com (the HELO name is mail.example.com)");
  });

  test("a DNSBL zone that lists the address fails ZEN with the listing decoded", async () => {
    const run = await withZones(
      (z) => (z[ZEN] = soa(ZEN, ["25.2.0.192 IN A 127.0.0.2", "25.2.0.192 IN A 127.0.0.4"])),
      (server) => mailstackCheck(["--json"], { server }),
    );
    expect({ status: run.status, notOk: notOk(run) }).toEqual({ status: 1, notOk: { "dnsbl:zen:192.0.2.25": "fail" } });
    expect(line(run, "dnsbl:zen:192.0.2.25").found).toMatch(/^listed: 127\.0\.0\.[24] .*; 127\.0\.0\.[24] /);
    expect(line(run, "dnsbl:zen:192.0.2.25").found).toContain("127.0.0.2 SBL: Spamhaus Block List");
  });

  test("Spamhaus refusing a public resolver reads 'could not check', a warning: exit 0, and 1 with --strict", async () => {
    const refusing = (z: Record<string, string>) => {
      z[ZEN] = soa(ZEN, ["25.2.0.192 IN A 127.255.255.254"]);
      z[DBL] = soa(DBL, ["example.com IN A 127.255.255.254"]);
    };
    const [plain, strict] = await withZones(refusing, (server) => Promise.all([mailstackCheck(["--json"], { server }), mailstackCheck(["--json", "--strict"], { server })]));
    const expected = { "dnsbl:zen:192.0.2.25": "warn", "dnsbl:dbl:example.com": "warn" };
    expect({ status: plain.status, notOk: notOk(plain) }).toEqual({ status: 0, notOk: expected });
    expect({ status: strict.status, notOk: notOk(strict) }).toEqual({ status: 1, notOk: expected });
    expect(line(plain, "dnsbl:zen:192.0.2.25").found).toMatch(/^could not check: Spamhaus refused the query, 127\.255\.255\.254 \(query through a public or open resolver/);
    expect(line(plain, "dnsbl:zen:192.0.2.25").found).not.toMatch(/not listed/);
  });

  test("an MTA-STS policy that is not the one its id announces fails that domain's policy line", async () => {
    const file = join(stack.paths.runtime, "www/.well-known/mta-sts.txt");
    const policy = readFileSync(file, "utf8");
    try {
      writeFileSync(file, policy.replace(/^mode: \w+$/m, "mode: testing"));
      const run = await mailstackCheck(["--json"]);
      expect({ status: run.status, notOk: notOk(run) }).toMatchObject({ status: 1 });
      expect(Object.keys(notOk(run)).every((id) => id.startsWith("mta-sts:policy:"))).toBe(true);
      expect(line(run, "mta-sts:policy:example.com").found).toMatch(/^served policy has id [0-9a-f]{20}, the plan's is [0-9a-f]{20} \(mode testing\)$/);
    } finally {
      writeFileSync(file, policy);
    }
  });

  test("an expired certificate on the mail ports fails the certificate line only, with the date", async () => {
    const cert = readFileSync(stack.paths.tlsCert, "utf8");
    const expired = expiredCertificate();
    try {
      await swapCertificate(expired);
      const run = await mailstackCheck(["--json"]);
      expect({ status: run.status, notOk: notOk(run) }).toEqual({ status: 1, notOk: { "tls:certificate": "fail" } });
      expect(line(run, "tls:certificate").found).toMatch(/^expired \d{4}-\d\d-\d\d \(\d+ days ago\)$/);
    } finally {
      await swapCertificate(cert);
    }
  });

  test("a closed port: 993 refused by a firewall rule on the host fails that port alone", async () => {
    // Not Dovecot stopped: submission's logins need it too, so 465 and 587 would rightly fail with it.
    stack.exec("nft", ["-f", "-"], "table inet check_fault {\n  chain input {\n    type filter hook input priority -10;\n    tcp dport 993 reject with tcp reset\n  }\n}\n");
    try {
      const run = await mailstackCheck(["--json"]);
      expect({ status: run.status, notOk: notOk(run) }).toEqual({ status: 1, notOk: { "port:993": "fail" } });
      expect(line(run, "port:993").found).toBe("connection refused or reset");
    } finally {
      stack.exec("nft", ["delete", "table", "inet", "check_fault"]);
    }
  });

  test("--status: a refused bundle fails the bundle line with the host's reason; stale health warns", async () => {
    try {
      report("host-bundle", { running: OTHER_BUNDLE, attempted: BUNDLE, result: "refused", reason: "doveconf: unknown setting", at: new Date().toISOString() });
      report("health", { ...freshHealth(), at: new Date(Date.now() - 40 * 60000).toISOString() });
      const run = await mailstackCheck(["--json", "--status"]);
      expect({ status: run.status, notOk: notOk(run) }).toEqual({ status: 1, notOk: { "host:bundle": "fail", "host:health": "warn" } });
      expect(line(run, "host:bundle").found).toMatch(/^refused: doveconf: unknown setting; still running cdcdcdcdcdcd at /);
      expect(line(run, "host:health").found).toMatch(/\(40 min ago\): stale/);

      report("host-bundle", applied(BUNDLE));
      const stale = await mailstackCheck(["--json", "--status"]);
      expect({ status: stale.status, notOk: notOk(stale) }).toEqual({ status: 0, notOk: { "host:health": "warn" } });
    } finally {
      report("host-bundle", applied(BUNDLE));
      report("health", freshHealth());
    }
  });

  test("--wait with --expect-bundle: progress on stderr until the host reports the bundle applied, then the table and 0", async () => {
    const wanted = "ef".repeat(32);
    report("host-bundle", applied(BUNDLE));
    const running = mailstackCheck(["--status", "--expect-bundle", wanted, "--wait", "60", "--interval", "1"]);
    await new Promise((r) => setTimeout(r, 4000));
    report("host-bundle", applied(wanted));
    const run = await running;
    expect(run.status).toBe(0);
    expect(run.stderr).toMatch(/^mailstack check: round 1, \d+ s: 1 not passing \(host bundle in force\); checking again in 1 s$/m);
    expect(run.stderr).toMatch(/: all checks pass\n$/);
    expect(run.stdout).toMatch(/^OK\s+host bundle in force\s+running efefefefefef, applied/m);
    report("host-bundle", applied(BUNDLE));
  });

  test("--skip leaves checks out: port 25 (blocked outbound on many networks) takes DANE with it", async () => {
    const run = await mailstackCheck(["--json", "--skip", "port:25", "--skip", "dnsbl"]);
    expect({ status: run.status, notOk: notOk(run) }).toEqual({ status: 0, notOk: {} });
    const ids = run.json!.checks.map((c) => c.id);
    expect(ids.filter((id) => id === "port:25" || id === "tls:dane" || id.startsWith("dnsbl:"))).toEqual([]);
    expect(ids).toEqual(expect.arrayContaining(["port:465", "tls:certificate"]));
  });

  test("--wait gives up when the time is up: exit 1 and the last table", async () => {
    const run = await mailstackCheck(["--status", "--expect-bundle", "ef".repeat(32), "--wait", "2", "--interval", "1"]);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/giving up after 2 s\n$/);
    expect(run.stdout).toMatch(/^FAIL\s+host bundle in force\s+running efefefefefef, applied\s+not taken up yet: running abababab/m);
  });
});

/** A certificate for the runtime key and every name, from the test CA, that expired two days ago. */
function expiredCertificate(): string {
  const names = readFileSync(join(stack.paths.runtime, "certificate-names"), "utf8").split("\n").filter(Boolean);
  const dir = join(work, "expired");
  runOk("mkdir", ["-p", join(dir, "new")]);
  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "ca.cnf"), ["[ca]", "default_ca = test", "[test]", `database = ${dir}/index.txt`, `new_certs_dir = ${dir}/new`, "serial = " + join(dir, "serial"), "default_md = sha256", "policy = any", "copy_extensions = copy", "[any]", "commonName = supplied", ""].join("\n"));
  writeFileSync(join(dir, "serial"), "1000\n");
  runOk("openssl", ["req", "-new", "-key", stack.paths.tlsKey, "-subj", `/CN=${stack.config.hostname}`, "-addext", `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`, "-out", join(dir, "csr.pem")]);
  const day = (offset: number) => new Date(Date.now() + offset * 86400000).toISOString().replace(/[-:T]/g, "").slice(2, 14) + "Z";
  runOk("openssl", ["ca", "-batch", "-config", join(dir, "ca.cnf"), "-cert", join(work, "ca.pem"), "-keyfile", join(work, "ca.key"), "-startdate", day(-30), "-enddate", day(-2), "-notext", "-in", join(dir, "csr.pem"), "-out", join(dir, "cert.pem")]);
  return readFileSync(join(dir, "cert.pem"), "utf8") + readFileSync(join(work, "ca.pem"), "utf8");
}

/**
 * Installs a certificate and reloads Postfix and Dovecot, not nginx: the fault is the mail
 * ports' certificate, and the MTA-STS fetch on 443 verifies its own on its own line.
 */
async function swapCertificate(pem: string): Promise<void> {
  writeFileSync(stack.paths.tlsCert, pem);
  runOk("ip", ["netns", "exec", stack.ns, "postfix", "-c", stack.paths.postfixConfig, "reload"]);
  runOk("doveadm", ["-c", stack.dovecotConfig, "reload"]);
  const want = new X509Certificate(pem).fingerprint256;
  await stack.until("Postfix and Dovecot to serve the certificate", () => {
    return [["-connect", "127.0.0.1:25", "-starttls", "smtp"], ["-connect", "127.0.0.1:993"]].every((args) => {
      const out = stack.exec("openssl", ["s_client", ...args, "-servername", stack.config.hostname], "").stdout;
      const served = out.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/)?.[0];
      return served !== undefined && new X509Certificate(served).fingerprint256 === want;
    });
  });
}
