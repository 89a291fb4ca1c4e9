/**
 * The pure parts of `mailstack check`, without a network: record comparison, Spamhaus codes,
 * certificate and policy verdicts, the host's reports, the report and its exit code, and the
 * command line (usage errors exit 2, through the compiled command).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { type DnsRecord, dnsRecords, parseConfig, placeholderValues, txtContent } from "@mailstack/core";
import { parseServer } from "../../packages/cli/src/check-dns";
import { dnsblVerdict, DBL_CODES, ZEN_CODES } from "../../packages/cli/src/check-dnsbl";
import { policyVerdict } from "../../packages/cli/src/check-mta-sts";
import { canonicalRecord, compareRecordSet, recordSets } from "../../packages/cli/src/check-records";
import { bundleVerdict, healthVerdicts } from "../../packages/cli/src/check-status";
import { type CertificateSeen, certificateVerdict, MAIL_PORTS, type PortResult } from "../../packages/cli/src/check-tls";
import { exitCode, formatReport, report, verdict } from "../../packages/cli/src/check-verdict";
import { parseOutputs } from "../../packages/cli/src/check";

const CLI = join(__dirname, "..", "..", "packages", "cli", "dist", "main.js");
const config = parseConfig({ domain: "example.com", mailboxes: [{ address: "a@example.com", password: "correct horse battery staple" }], dnssec: true, pop3: true });
const records = dnsRecords(config, placeholderValues(config));
const setOf = (name: string, type: string) => recordSets(records).find((s) => s.name === name && s.type === type)!;
const ok = (values: string[]) => ({ rcode: "NOERROR", values });

describe("record sets: exact where the plan owns the name", () => {
  test("every planned record's canonical form is what the DNS client produces for it", () => {
    const forms = Object.fromEntries(records.map((r) => [`${r.type} ${r.name}${r.type === "SRV" ? "" : ""}`, canonicalRecord(r)]));
    expect(forms["MX example.com"]).toBe("10 mail.example.com");
    expect(forms["CAA mail.example.com"]).toMatch(/^0 (issue|iodef) "/);
    expect(forms["TLSA _25._tcp.mail.example.com"]).toBe(`3 1 1 ${"0".repeat(64)}`);
    expect(forms["SRV _imap._tcp.example.com"]).toBe("0 0 0 .");
    expect(forms["TXT mail._domainkey.example.com"]).toBe(`v=DKIM1; k=rsa; p=${"A".repeat(392)}`);
  });

  test("the same set in any order is ok; missing, extra and different values each named", () => {
    const caa = setOf("mail.example.com", "CAA");
    const want = caa.records.map(canonicalRecord);
    expect(compareRecordSet(caa, ok([...want].reverse()))[0].status).toBe("ok");
    const [missing] = compareRecordSet(caa, ok([want[0]]));
    expect(missing).toMatchObject({ status: "fail", found: `missing ${want[1]} (all: ${want[0]})` });
    const [extra] = compareRecordSet(caa, ok([...want, '0 issue "evil.example"']));
    expect(extra).toMatchObject({ status: "fail", found: `not planned 0 issue "evil.example" (all: ${[...want, '0 issue "evil.example"'].join(" | ")})` });
    const [different] = compareRecordSet(setOf("example.com", "MX"), ok(["10 other.example.net"]));
    expect(different.found).toBe("missing 10 mail.example.com; not planned 10 other.example.net (all: 10 other.example.net)");
  });

  test("NXDOMAIN, no data and a failed lookup read differently, all failing", () => {
    const mx = setOf("example.com", "MX");
    expect(compareRecordSet(mx, { rcode: "NXDOMAIN", values: [] })[0].found).toBe("nothing (NXDOMAIN: the name does not exist)");
    expect(compareRecordSet(mx, { rcode: "NOERROR", values: [] })[0].found).toBe("nothing (the name has no record of this type)");
    expect(compareRecordSet(mx, { rcode: "SERVFAIL", values: [] })[0]).toMatchObject({ status: "fail", found: "no answer (SERVFAIL)" });
    expect(compareRecordSet(mx, { rcode: "TIMEOUT", values: ["10 mail.example.com"] })[0].status).toBe("fail");
  });

  test("TXT at the apex is shared: other values are the operator's, but a second SPF record fails", () => {
    const apex = setOf("example.com", "TXT");
    expect(apex.shared).toBe(true);
    expect(setOf("_dmarc.example.com", "TXT").shared).toBe(false);
    expect(compareRecordSet(apex, ok(["google-site-verification=x", "v=spf1 mx -all"]))).toEqual([verdict("dns:TXT:example.com:spf-example.com", "TXT example.com (SPF)", "ok", "v=spf1 mx -all", "v=spf1 mx -all")]);
    expect(compareRecordSet(apex, ok(["v=spf1 mx -all", "v=spf1 include:x -all"]))[0]).toMatchObject({ status: "fail", found: "2 SPF records (receivers treat that as a permanent error): v=spf1 mx -all | v=spf1 include:x -all" });
    expect(compareRecordSet(apex, ok(["v=spf1 a -all"]))[0]).toMatchObject({ status: "fail", found: "v=spf1 a -all" });
    expect(compareRecordSet(apex, ok(["other"]))[0]).toMatchObject({ status: "fail", found: "other" });
  });

  test("a non-apex TXT (DKIM) with another value beside it is not the planned set", () => {
    const dkim = setOf("mail._domainkey.example.com", "TXT");
    const [v] = compareRecordSet(dkim, ok([canonicalRecord(dkim.records[0]), "v=DKIM1; p=old"]));
    expect(v).toMatchObject({ status: "fail", found: expect.stringMatching(/^not planned v=DKIM1; p=old/) });
  });
});

describe("Spamhaus return codes", () => {
  const zen = (lookup: { rcode: string; values: string[] }) => dnsblVerdict("z", "ZEN", lookup, ZEN_CODES);
  test.each([
    ["127.0.0.2", "SBL"],
    ["127.0.0.3", "SBL CSS"],
    ["127.0.0.4", "XBL"],
    ["127.0.0.9", "DROP"],
    ["127.0.0.10", "PBL"],
  ])("ZEN %s is a listing, named (%s)", (code, name) => {
    expect(zen(ok([code]))).toMatchObject({ status: "fail", found: expect.stringContaining(`${code} `) });
    expect(zen(ok([code])).found).toContain(name);
  });
  test.each([
    ["127.255.255.252", "typing error"],
    ["127.255.255.254", "public or open resolver"],
    ["127.255.255.255", "excessive number of queries"],
  ])("%s is Spamhaus refusing the query: could not check, never 'not listed'", (code, why) => {
    const v = zen(ok([code]));
    expect(v.status).toBe("warn");
    expect(v.found).toMatch(/^could not check: Spamhaus refused the query/);
    expect(v.found).toContain(why);
    expect(v.found).not.toMatch(/not listed/);
  });
  test("NXDOMAIN is not listed; a failed lookup or an answer outside 127/8 cannot be judged; DBL codes decoded", () => {
    expect(zen({ rcode: "NXDOMAIN", values: [] })).toMatchObject({ status: "ok", found: "not listed" });
    expect(zen({ rcode: "SERVFAIL", values: [] })).toMatchObject({ status: "warn", found: "could not check: the lookup failed (SERVFAIL)" });
    expect(zen({ rcode: "TIMEOUT", values: [] }).status).toBe("warn");
    expect(zen(ok(["192.0.2.1"]))).toMatchObject({ status: "warn", found: "could not check: unexpected answer 192.0.2.1" });
    expect(zen(ok(["127.0.0.99"]))).toMatchObject({ status: "fail", found: "listed: 127.0.0.99 (code not documented)" });
    expect(dnsblVerdict("d", "DBL", ok(["127.0.1.4"]), DBL_CODES).found).toBe("listed: 127.0.1.4 phishing domain");
  });
});

describe("the certificate the ports serve", () => {
  const now = new Date("2026-06-01T00:00:00Z");
  const cert = (over: Partial<CertificateSeen> = {}): CertificateSeen => ({
    fingerprint256: "AA",
    subjectAltName: "DNS:mail.example.com",
    validFrom: new Date("2026-05-01T00:00:00Z"),
    validTo: new Date("2026-07-30T00:00:00Z"),
    spkiSha256: "00",
    ...over,
  });
  const served = (...certs: CertificateSeen[]): PortResult[] => certs.map((c, i) => ({ port: MAIL_PORTS[i], target: `x:${MAIL_PORTS[i].port}`, certificate: c }));
  test("ok with the days left; warn under 14 days; fail expired, untrusted, for another name, or none at all", () => {
    expect(certificateVerdict(served(cert()), "mail.example.com", now)).toMatchObject({ status: "ok", found: "valid until 2026-07-30, 59 days left" });
    expect(certificateVerdict(served(cert({ validTo: new Date("2026-06-10T12:00:00Z") })), "mail.example.com", now)).toMatchObject({ status: "warn", found: "valid until 2026-06-10, 9 days left (renewal is overdue)" });
    expect(certificateVerdict(served(cert({ validTo: new Date("2026-05-29T00:00:00Z"), chainError: "CERT_HAS_EXPIRED" })), "mail.example.com", now)).toMatchObject({ status: "fail", found: "expired 2026-05-29 (3 days ago)" });
    expect(certificateVerdict(served(cert({ chainError: "SELF_SIGNED_CERT_IN_CHAIN" })), "mail.example.com", now)).toMatchObject({ status: "fail", found: "not trusted: SELF_SIGNED_CERT_IN_CHAIN" });
    expect(certificateVerdict(served(cert({ nameError: "Host: mail.example.com. is not in the cert's altnames" })), "mail.example.com", now).status).toBe("fail");
    expect(certificateVerdict([{ port: MAIL_PORTS[0], target: "x:25", error: "connection refused or reset" }], "mail.example.com", now)).toMatchObject({ status: "fail", found: "no port completed a TLS handshake" });
  });
  test("ports serving different certificates are each described, the worst verdict wins", () => {
    const v = certificateVerdict(served(cert(), cert({ fingerprint256: "BB", validTo: new Date("2026-06-05T00:00:00Z") }), cert()), "mail.example.com", now);
    expect(v).toMatchObject({ status: "warn", found: "ports 25, 587: valid until 2026-07-30, 59 days left; ports 465: valid until 2026-06-05, 4 days left (renewal is overdue)" });
  });
});

describe("the MTA-STS policy against the plan", () => {
  const policy = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 604800\n";
  const id = createHash("sha256").update(policy).digest("hex").slice(0, 20);
  const fetched = (body: string, over = {}) => ({ status: 200, contentType: "text/plain", body, ...over });
  test("the planned policy passes; another text, an uncovered MX, a redirect or HTML each fail", () => {
    expect(policyVerdict("example.com", id, ["mail.example.com"], fetched(policy))).toMatchObject({ status: "ok", found: `mode enforce, mx mail.example.com, id ${id}` });
    expect(policyVerdict("example.com", id, ["mail.example.com"], fetched(policy.replace("enforce", "testing"))).found).toMatch(/^served policy has id [0-9a-f]{20}, the plan's is /);
    expect(policyVerdict("example.com", id, ["mail.example.com", "backup.example.net"], fetched(policy)).found).toBe("no mx line covers backup.example.net");
    expect(policyVerdict("example.com", id, ["a.mx.example.net"], fetched(policy.replace("mail.example.com", "*.mx.example.net"))).found).not.toMatch(/covers/);
    expect(policyVerdict("example.com", id, [], fetched(policy, { status: 301 })).found).toBe("HTTP 301 (senders accept 200 only, no redirects)");
    expect(policyVerdict("example.com", id, [], fetched(policy, { contentType: "text/html" })).status).toBe("fail");
    expect(policyVerdict("example.com", id, [], { error: "ECONNREFUSED" })).toMatchObject({ status: "fail", found: "ECONNREFUSED" });
    expect(policyVerdict("example.com", id, [], fetched("version STSv1\n")).found).toBe('not a policy line: "version STSv1"');
  });
});

describe("the host's reports", () => {
  const sha = "ab".repeat(32);
  const now = new Date("2026-06-01T12:00:00Z");
  test("bundle: applied, refused with the reason, not yet taken up, missing, not JSON", () => {
    const doc = (o: object) => JSON.stringify({ running: sha, attempted: sha, result: "applied", reason: null, at: "2026-06-01T11:00:00Z", ...o });
    expect(bundleVerdict(doc({}), sha, "/p/status/host-bundle")).toMatchObject({ status: "ok", found: "running abababababab, applied at 2026-06-01T11:00:00Z" });
    expect(bundleVerdict(doc({ running: "cd".repeat(32), result: "rolled-back", reason: "rolled back: postfix did not come back" }), sha, "/p").found).toBe(
      "rolled-back: rolled back: postfix did not come back; still running cdcdcdcdcdcd at 2026-06-01T11:00:00Z",
    );
    expect(bundleVerdict(doc({}), "ef".repeat(32), "/p")).toMatchObject({ status: "fail", found: expect.stringMatching(/^not taken up yet: running abababababab/) });
    expect(bundleVerdict(undefined, sha, "/p/status/host-bundle")).toMatchObject({ status: "fail", found: "no report in /p/status/host-bundle yet (the host has not run its first sync)" });
    expect(bundleVerdict("{", sha, "/p").found).toBe("/p is not JSON");
    expect(bundleVerdict(doc({ result: "refused", reason: "x" }), undefined, "/p").status).toBe("fail");
  });
  test("health: fresh, stale, unknown fields ignored, unmeasured figures left out, late backup, expiring certificate", () => {
    const fresh = healthVerdicts(JSON.stringify({ at: "2026-06-01T11:58:00Z", queueActive: 2, queueDeferred: 5, hoursSinceBackup: 4, certificateDaysLeft: 60.4, newThing: [1] }), "/h", now);
    expect(fresh.map((v) => [v.id, v.status, v.found])).toEqual([
      ["host:health", "ok", "written 2026-06-01T11:58:00Z (2 min ago)"],
      ["host:queue", "ok", "2 active, 5 deferred"],
      ["host:backup", "ok", "4 h ago"],
      ["host:certificate", "ok", "60 days left"],
    ]);
    const late = healthVerdicts(JSON.stringify({ at: "2026-06-01T11:00:00Z", queueActive: 0, queueDeferred: 0, hoursSinceBackup: 30, certificateDaysLeft: 5 }), "/h", now);
    expect(late.map((v) => [v.id, v.status])).toEqual([
      ["host:health", "warn"],
      ["host:queue", "ok"],
      ["host:backup", "warn"],
      ["host:certificate", "warn"],
    ]);
    const unmeasured = healthVerdicts(JSON.stringify({ at: "2026-06-01T11:59:00Z", queueActive: 0, queueDeferred: 0, hoursSinceBackup: 1, certificateDaysLeft: null }), "/h", now);
    expect(unmeasured.map((v) => v.id)).toEqual(["host:health", "host:queue", "host:backup"]);
    expect(healthVerdicts(JSON.stringify({ at: "soon" }), "/h", now)).toEqual([expect.objectContaining({ status: "warn", found: 'no valid "at" time in the report' })]);
    expect(healthVerdicts(undefined, "/h", now)[0]).toMatchObject({ status: "fail", found: "no report in /h (is the metrics timer running?)" });
    expect(healthVerdicts(JSON.stringify({ at: "2026-06-01T11:59:00Z", certificateDaysLeft: -1.5 }), "/h", now)[1]).toMatchObject({ status: "fail", found: "expired 2 days ago" });
  });
});

describe("the report", () => {
  const v = (status: "ok" | "warn" | "fail") => verdict(`id-${status}`, `check ${status}`, status, "e", "f");
  test("warnings pass unless --strict; a failure never passes", () => {
    const at = new Date(0);
    expect(exitCode(report([v("ok"), v("warn")], false, at, 1))).toBe(0);
    expect(exitCode(report([v("ok"), v("warn")], true, at, 1))).toBe(1);
    expect(exitCode(report([v("fail")], false, at, 1))).toBe(1);
    expect(report([v("ok"), v("warn"), v("fail")], false, at, 2)).toEqual({
      ok: false,
      strict: false,
      checkedAt: "1970-01-01T00:00:00.000Z",
      rounds: 2,
      summary: { ok: 1, warn: 1, fail: 1 },
      checks: [v("ok"), v("warn"), v("fail")],
    });
  });
  test("the table clips long values in the middle and ends with the tally", () => {
    const long = verdict("dkim", "TXT a._domainkey.example.com", "ok", `v=DKIM1; p=${"A".repeat(300)}XYZ`, "same");
    const text = formatReport(report([long, v("warn")], false, new Date(0), 1));
    const lines = text.split("\n");
    expect(lines[0]).toMatch(/^STATUS\s+CHECK\s+EXPECTED\s+FOUND$/);
    expect(lines[1]).toMatch(/^OK {6}TXT a\._domainkey\.example\.com\s+v=DKIM1; p=A+…A+XYZ\s+same$/);
    expect(lines[1].length).toBeLessThan(120);
    expect(lines.at(-1)).toBe("1 ok, 1 warn, 0 fail: passed");
  });
});

describe("the command line", () => {
  const outputs = { hostname: "mail.example.com", publicIp: "192.0.2.1", dnsRecords: records, hostBundleSha256: "ab".repeat(32) };
  let dir: string;
  let file: string;
  beforeAll(() => {
    dir = mkdtempSync("/tmp/ms-check-args-");
    file = join(dir, "outputs.json");
    writeFileSync(file, JSON.stringify(outputs));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const mailstack = (...args: string[]) => spawnSync(process.execPath, [CLI, "check", ...args], { encoding: "utf8", input: "", timeout: 30000 });

  test("parseOutputs names what is wrong", () => {
    expect(parseOutputs(JSON.stringify(outputs), "f").dnsRecords).toHaveLength(records.length);
    expect(() => parseOutputs("nope", "f")).toThrow(/^--outputs f is not JSON/);
    expect(() => parseOutputs(JSON.stringify({ ...outputs, publicIp: "[secret]" }), "f")).toThrow('--outputs f: publicIp "[secret]" is not an IPv4 address; pass the JSON of `pulumi stack output --json` for the mail stack');
    expect(() => parseOutputs(JSON.stringify({ ...outputs, dnsRecords: [{ key: "x" }] }), "f")).toThrow("dnsRecords[0] is not a DNS record");
    expect(() => parseOutputs(JSON.stringify({ ...outputs, dnsRecords: [{ ...records[0], type: "NS" }] }), "f")).toThrow("dnsRecords[0]");
  });

  test("--resolver takes IP, IP:PORT and [IPv6]:PORT", () => {
    expect(parseServer("127.0.0.1")).toEqual({ host: "127.0.0.1", port: 53 });
    expect(parseServer("127.0.0.1:5353")).toEqual({ host: "127.0.0.1", port: 5353 });
    expect(parseServer("[::1]:5353")).toEqual({ host: "::1", port: 5353 });
    expect(parseServer("::1")).toEqual({ host: "::1", port: 53 });
    expect(parseServer("dns.example")).toBeUndefined();
    expect(parseServer("127.0.0.1:99999")).toBeUndefined();
  });

  test.each([
    [[], /^mailstack: --outputs is required/],
    [["--outputs", "/nonexistent/outputs.json"], /^mailstack: --outputs \/nonexistent\/outputs\.json: ENOENT/],
    [["--outputs", "-"], /^mailstack: --outputs \(stdin\) is not JSON/],
    [["--outputs", "FILE", "--bogus"], /^mailstack: Unknown option '--bogus'/],
    [["--outputs", "FILE", "--timeout", "0"], /^mailstack: --timeout must be a positive number of seconds, not "0"/],
    [["--outputs", "FILE", "--wait", "soon"], /^mailstack: --wait must be a positive number of seconds/],
    [["--outputs", "FILE", "--resolver", "dns.google"], /^mailstack: --resolver dns.google is not IP, IP:PORT or \[IPv6\]:PORT/],
    [["--outputs", "FILE", "--connect", "mail.example.com"], /^mailstack: --connect mail.example.com is not an IP address/],
    [["--outputs", "FILE", "--port", "80=8080"], /^mailstack: --port 80=8080 is not N=M with N one of 25, 465, 587, 993, 443/],
    [["--outputs", "FILE", "--dnsbl-zone", "not a zone"], /^mailstack: --dnsbl-zone not a zone is not a DNS zone name/],
    [["--outputs", "FILE", "--expect-bundle", "ab".repeat(32)], /^mailstack: --expect-bundle compares with the host's own report: add --status/],
    [["--outputs", "FILE", "--status", "--expect-bundle", "abc"], /^mailstack: --expect-bundle must be a hex SHA-256/],
    [["--outputs", "FILE", "--status"], /^mailstack: --status needs the stack's SSM path: the outputs have no parameterPath; pass --parameter-path/],
    [["--outputs", "FILE", "--status", "--parameter-path", "mailstack/x"], /^mailstack: --parameter-path mailstack\/x is not an SSM path/],
    [["--outputs", "FILE", "--ca", "FILE"], /^mailstack: --ca .* holds no PEM certificate/],
  ])("usage error %j exits 2 with the option and the fix", (args, message) => {
    const r = mailstack(...args.map((a) => (a === "FILE" ? file : a)));
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 2, stdout: "" });
    expect(r.stderr).toMatch(message);
  });

  test("--help prints the usage and exits 0; `mailstack --help` shows both commands", () => {
    const r = mailstack("--help");
    expect({ status: r.status, start: r.stdout.split("\n")[0] }).toEqual({ status: 0, start: expect.stringMatching(/^usage: mailstack check --outputs FILE\|-/) });
    const top = spawnSync(process.execPath, [CLI, "--help"], { encoding: "utf8" });
    expect(top.stdout).toMatch(/usage: mailstack plan[\s\S]*usage: mailstack check/);
  });

  test("TXT content in the outputs is compared as the value it carries, however split", () => {
    const long = `v=DKIM1; k=rsa; p=${"B".repeat(400)}`;
    const record: DnsRecord = { ...records.find((r) => r.key.startsWith("dkim-"))!, content: txtContent(long) };
    expect(canonicalRecord(record)).toBe(long);
  });
});
