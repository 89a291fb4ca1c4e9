import { createHash, generateKeyPairSync } from "node:crypto";
import {
  DEFAULT_TTL,
  dkimPublicKeyFromPem,
  dkimRecordValue,
  type DnsRecord,
  dnsRecords,
  type MailConfigInput,
  parseConfig,
  dnsZones,
  mtaStsId,
  mtaStsPolicy,
  placeholderValues,
  type RecordValues,
  spkiSha256,
  txtContent,
  txtValue,
  zoneFile,
} from "@mailstack/core";
import { fullConfig, minimalConfig } from "../support/fixtures";

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/** A fixed stand-in of the length of a 2048-bit RSA SubjectPublicKeyInfo in base64. */
const KEY = Array.from({ length: 392 }, (_, i) => B64[(i * 7) % 64]).join("");
const VALUES: RecordValues = { ipv4: "203.0.113.25", dkimPublicKeys: { mail: KEY, s2: KEY } };
const DKIM_VALUE = `v=DKIM1; k=rsa; p=${KEY}`;
const DKIM_CONTENT = `"${DKIM_VALUE.slice(0, 255)}" "${DKIM_VALUE.slice(255)}"`;

/** Splits TXT content into its character-strings, unescaped. */
function characterStrings(content: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < content.length) {
    expect(content[i]).toBe('"');
    let s = "";
    i++;
    while (content[i] !== '"') {
      if (i >= content.length) throw new Error(`unterminated string in ${content}`);
      if (content[i] === "\\") i++;
      s += content[i++];
    }
    out.push(s);
    i++;
    if (i < content.length) {
      expect(content[i]).toBe(" ");
      i++;
    }
  }
  return out;
}

const POLICY = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 604800\n";
const STS_ID = createHash("sha256").update(POLICY).digest("hex").slice(0, 20);

type Expected = Omit<DnsRecord, "comment">;
const r = (key: string, zone: string, name: string, type: DnsRecord["type"], content: string, extra: Partial<DnsRecord> = {}): Expected => ({
  key,
  zone,
  name,
  type,
  content,
  ttl: 3600,
  ...extra,
});
const srvRecord = (key: string, zone: string, name: string, port: number, target: string): Expected =>
  target === "."
    ? r(key, zone, name, "SRV", "0 0 0 .", { data: { kind: "SRV", priority: 0, weight: 0, port: 0, target: "." } })
    : r(key, zone, name, "SRV", `0 1 ${port} ${target}`, { data: { kind: "SRV", priority: 0, weight: 1, port, target } });

/** The mail host's own records with the default CAA. */
function hostRecords(zone = "example.com", host = "mail.example.com"): Expected[] {
  return [
    r("host-a", zone, host, "A", "203.0.113.25"),
    r("host-spf", zone, host, "TXT", '"v=spf1 a -all"'),
    r("host-caa-issue-letsencrypt.org", zone, host, "CAA", '0 issue "letsencrypt.org"', { data: { kind: "CAA", flags: 0, tag: "issue", value: "letsencrypt.org" } }),
    r("host-caa-iodef", zone, host, "CAA", '0 iodef "mailto:postmaster@example.com"', { data: { kind: "CAA", flags: 0, tag: "iodef", value: "mailto:postmaster@example.com" } }),
  ];
}

/** Every record of one mail domain with defaults apart from the DMARC report address. */
function domainRecords(d: string, reports: string, host = "mail.example.com", id = STS_ID): Expected[] {
  return [
    r(`mx-${d}`, d, d, "MX", host, { priority: 10 }),
    r(`spf-${d}`, d, d, "TXT", '"v=spf1 mx -all"'),
    r(`dkim-mail-${d}`, d, `mail._domainkey.${d}`, "TXT", DKIM_CONTENT),
    r(`dmarc-${d}`, d, `_dmarc.${d}`, "TXT", `"v=DMARC1; p=quarantine; rua=mailto:${reports}; adkim=r; aspf=r"`),
    ...(reports.endsWith(`@${d}`) ? [] : [r(`dmarc-report-auth-${d}`, "example.com", `${d}._report._dmarc.example.com`, "TXT", '"v=DMARC1"')]),
    r(`mta-sts-${d}`, d, `_mta-sts.${d}`, "TXT", `"v=STSv1; id=${id}"`),
    r(`mta-sts-host-${d}`, d, `mta-sts.${d}`, "CNAME", host),
    r(`tls-rpt-${d}`, d, `_smtp._tls.${d}`, "TXT", `"v=TLSRPTv1; rua=mailto:${reports}"`),
    srvRecord(`srv-submissions-${d}`, d, `_submissions._tcp.${d}`, 465, host),
    srvRecord(`srv-submission-${d}`, d, `_submission._tcp.${d}`, 587, host),
    srvRecord(`srv-imaps-${d}`, d, `_imaps._tcp.${d}`, 993, host),
    srvRecord(`srv-imap-${d}`, d, `_imap._tcp.${d}`, 0, "."),
    srvRecord(`srv-pop3s-${d}`, d, `_pop3s._tcp.${d}`, 0, "."),
    srvRecord(`srv-pop3-${d}`, d, `_pop3._tcp.${d}`, 0, "."),
    r(`autoconfig-${d}`, d, `autoconfig.${d}`, "CNAME", host),
    r(`autodiscover-${d}`, d, `autodiscover.${d}`, "CNAME", host),
    srvRecord(`srv-autodiscover-${d}`, d, `_autodiscover._tcp.${d}`, 443, host),
  ];
}

const withoutComments = (records: DnsRecord[]) => records.map(({ comment: _c, ...rest }) => rest);

describe("dnsRecords", () => {
  test("single-domain config: exact records", () => {
    const records = dnsRecords(parseConfig(minimalConfig()), VALUES);
    expect(withoutComments(records)).toEqual([...hostRecords(), ...domainRecords("example.com", "alice@example.com")]);
    for (const rec of records) expect(rec.comment.length).toBeGreaterThan(10);
    expect(records.find((rec) => rec.type !== "MX" && rec.priority !== undefined)).toBeUndefined();
  });

  test("two-domain config (fullConfig): exact records", () => {
    const config = parseConfig(fullConfig());
    const records = dnsRecords(config, VALUES);
    // fullConfig offers POP3S, so its SRV record names the host.
    const pop3 = (list: Expected[], d: string) => list.map((rec) => (rec.key === `srv-pop3s-${d}` ? srvRecord(rec.key, d, rec.name, 995, "mail.example.com") : rec));
    expect(config.pop3).toBe(true);
    expect(withoutComments(records)).toEqual([
      ...hostRecords(),
      ...pop3(domainRecords("example.com", "dmarc@example.com"), "example.com"),
      ...pop3(domainRecords("example.org", "dmarc@example.com"), "example.org"),
    ]);
    const keys = records.map((rec) => rec.key);
    expect(new Set(keys).size).toBe(keys.length);
  });

  test("MTA-STS: the id follows the policy text, which lists every MX host", () => {
    const base = parseConfig(minimalConfig());
    expect(mtaStsPolicy(base)).toBe(POLICY);
    expect(mtaStsId(base)).toBe(STS_ID);
    const testing = parseConfig({ ...minimalConfig(), mtaSts: "testing", secondaryMx: [{ host: "backup.example.net" }] });
    expect(mtaStsPolicy(testing)).toBe("version: STSv1\nmode: testing\nmx: mail.example.com\nmx: backup.example.net\nmax_age: 86400\n");
    expect(mtaStsId(testing)).not.toBe(STS_ID);
    expect(mtaStsId(testing)).toMatch(/^[0-9a-f]{20}$/);
    expect(mtaStsPolicy(parseConfig({ ...minimalConfig(), mtaSts: "none" }))).toBe("version: STSv1\nmode: none\nmax_age: 86400\n");
  });

  test("secondary MX hosts follow the mail host, in order, on every domain", () => {
    const config = parseConfig({ ...fullConfig(), secondaryMx: [{ host: "mx2.example.net" }, { host: "mx3.example.net", priority: 50 }] });
    const mx = dnsRecords(config, VALUES).filter((rec) => rec.type === "MX");
    expect(mx.map((rec) => `${rec.key} ${rec.name} ${rec.priority} ${rec.content}`)).toEqual([
      "mx-example.com example.com 10 mail.example.com",
      "mx-mx2.example.net-example.com example.com 20 mx2.example.net",
      "mx-mx3.example.net-example.com example.com 50 mx3.example.net",
      "mx-example.org example.org 10 mail.example.com",
      "mx-mx2.example.net-example.org example.org 20 mx2.example.net",
      "mx-mx3.example.net-example.org example.org 50 mx3.example.net",
    ]);
  });

  test("SPF includes go between mx and -all", () => {
    const config = parseConfig({ ...minimalConfig(), spfInclude: ["amazonses.com", "include:_spf.example.net"] });
    const spf = dnsRecords(config, VALUES).find((rec) => rec.key === "spf-example.com")!;
    expect(txtValue(spf.content)).toBe("v=spf1 mx include:amazonses.com include:_spf.example.net -all");
  });

  test("DKIM rotation: every published selector has its record, each from its own key", () => {
    const values: RecordValues = { ...VALUES, dkimPublicKeys: { a: "A".repeat(392), b: "B".repeat(392), c: "C".repeat(392) } };
    const dkim = (input: MailConfigInput) =>
      dnsRecords(parseConfig(input), values)
        .filter((rec) => rec.key.startsWith("dkim-") && rec.zone === "example.com")
        .map((rec) => `${rec.name} ${txtValue(rec.content).slice(-3)} ${rec.comment.replace(/.*\(/, "(")}`);
    expect(dkim({ ...minimalConfig(), dkimSelector: "a" })).toEqual(["a._domainkey.example.com AAA (signing)"]);
    expect(dkim({ ...minimalConfig(), dkimSelector: "a", dkimNextSelector: "b" })).toEqual([
      "a._domainkey.example.com AAA (signing)",
      "b._domainkey.example.com BBB (next, not yet signing)",
    ]);
    expect(dkim({ ...minimalConfig(), dkimSelector: "b", dkimPreviousSelector: "a" })).toEqual([
      "b._domainkey.example.com BBB (signing)",
      "a._domainkey.example.com AAA (previous, kept for mail in transit)",
    ]);
    expect(dkim({ ...minimalConfig(), dkimSelector: "b", dkimNextSelector: "c", dkimPreviousSelector: "a" })).toHaveLength(3);
    expect(() => dnsRecords(parseConfig({ ...minimalConfig(), dkimNextSelector: "z" }), values)).toThrow("no DKIM public key for selector");
  });

  test("non-mail domains get a null MX, SPF -all and DMARC reject, in their own zone or the enclosing one", () => {
    const config = parseConfig({ ...minimalConfig(), nonMailDomains: ["example.net", "www.example.com"] });
    expect(dnsZones(config)).toEqual(["example.com", "example.net"]);
    const records = withoutComments(dnsRecords(config, VALUES).filter((rec) => rec.key.startsWith("null-")));
    expect(records).toEqual([
      r("null-mx-example.net", "example.net", "example.net", "MX", ".", { priority: 0 }),
      r("null-spf-example.net", "example.net", "example.net", "TXT", '"v=spf1 -all"'),
      r("null-dmarc-example.net", "example.net", "_dmarc.example.net", "TXT", '"v=DMARC1; p=reject; adkim=s; aspf=s"'),
      r("null-mx-www.example.com", "example.com", "www.example.com", "MX", ".", { priority: 0 }),
      r("null-spf-www.example.com", "example.com", "www.example.com", "TXT", '"v=spf1 -all"'),
      r("null-dmarc-www.example.com", "example.com", "_dmarc.www.example.com", "TXT", '"v=DMARC1; p=reject; adkim=s; aspf=s"'),
    ]);
  });

  test("DNSSEC adds the TLSA record for port 25, from the TLS key's hash", () => {
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const pem = publicKey.export({ type: "spki", format: "pem" }).toString();
    const hash = spkiSha256(pem);
    expect(hash).toBe(createHash("sha256").update(publicKey.export({ type: "spki", format: "der" })).digest("hex"));
    const config = parseConfig({ ...minimalConfig(), dnssec: true });
    const tlsa = withoutComments(dnsRecords(config, { ...VALUES, tlsKeySha256: hash.toUpperCase() }).filter((rec) => rec.type === "TLSA"));
    expect(tlsa).toEqual([
      r("host-tlsa", "example.com", "_25._tcp.mail.example.com", "TLSA", `3 1 1 ${hash}`, { data: { kind: "TLSA", usage: 3, selector: 1, matchingType: 1, certificate: hash } }),
    ]);
    expect(dnsRecords(parseConfig(minimalConfig()), { ...VALUES, tlsKeySha256: hash }).filter((rec) => rec.type === "TLSA")).toEqual([]);
    expect(() => dnsRecords(config, VALUES)).toThrow("TLS key's hash is missing");
  });

  test("CAA issuers follow the config; none when the list is empty", () => {
    const caa = (input: MailConfigInput) => dnsRecords(parseConfig(input), VALUES).filter((rec) => rec.type === "CAA").map((rec) => rec.content);
    expect(caa({ ...minimalConfig(), caaIssuers: ["letsencrypt.org", "sectigo.com"] })).toEqual([
      '0 issue "letsencrypt.org"',
      '0 issue "sectigo.com"',
      '0 iodef "mailto:postmaster@example.com"',
    ]);
    expect(caa({ ...minimalConfig(), caaIssuers: [] })).toEqual([]);
  });

  test("verification records: one TXT per value, keyed by the value so removing one leaves the rest", () => {
    const input = { ...minimalConfig(), verificationRecords: { "example.com": ["google-site-verification=abc", "MS=ms123"] } };
    const keys = (i: MailConfigInput) => dnsRecords(parseConfig(i), VALUES).filter((rec) => rec.key.startsWith("verify-"));
    const both = keys(input);
    expect(both.map((rec) => `${rec.name} ${rec.content}`)).toEqual(['example.com "google-site-verification=abc"', 'example.com "MS=ms123"']);
    const one = keys({ ...minimalConfig(), verificationRecords: { "example.com": ["MS=ms123"] } });
    expect(one.map((rec) => rec.key)).toEqual([both[1].key]);
  });

  test("DMARC policy, alignment and selector follow the config", () => {
    const config = parseConfig({ ...minimalConfig(), dmarcPolicy: "reject", dmarcStrictAlignment: true, dkimSelector: "s2" });
    const records = dnsRecords(config, VALUES);
    const dmarc = records.find((r) => r.key === "dmarc-example.com")!;
    expect(txtValue(dmarc.content)).toBe("v=DMARC1; p=reject; rua=mailto:alice@example.com; adkim=s; aspf=s");
    const dkim = records.find((r) => r.key === "dkim-s2-example.com")!;
    expect(dkim.name).toBe("s2._domainkey.example.com");
    expect(txtValue(dkim.content)).toBe(DKIM_VALUE);
  });

  test("a hostname in an extra domain lives in that zone", () => {
    const config = parseConfig({ ...fullConfig(), hostname: "mx.example.org" });
    const records = dnsRecords(config, VALUES);
    expect(records.find((r) => r.key === "host-a")).toMatchObject({ zone: "example.org", name: "mx.example.org" });
    expect(records.filter((r) => r.type === "MX").map((r) => r.content)).toEqual(["mx.example.org", "mx.example.org"]);
  });

  test("the longest hosted domain owns a name (sub-domain zones)", () => {
    const config = parseConfig({
      domain: "example.com",
      extraDomains: ["lists.example.com"],
      hostname: "mail.lists.example.com",
      mailboxes: [{ address: "alice@example.com", password: "correct horse battery staple" }],
    });
    const records = dnsRecords(config, VALUES);
    expect(records.find((r) => r.key === "host-a")!.zone).toBe("lists.example.com");
    expect(records.find((r) => r.key === "dmarc-lists.example.com")!.zone).toBe("lists.example.com");
    // The report address is in example.com, so lists.example.com must authorise it there.
    expect(records.find((r) => r.key === "dmarc-report-auth-lists.example.com")).toMatchObject({
      zone: "example.com",
      name: "lists.example.com._report._dmarc.example.com",
    });
  });

  describe("DMARC report authorisation", () => {
    const authKeys = (input: MailConfigInput) =>
      dnsRecords(parseConfig(input), VALUES)
        .filter((r) => r.key.startsWith("dmarc-report-auth-"))
        .map((r) => `${r.key} ${r.zone} ${r.name}`);

    test("none when reports stay in the only domain", () => {
      expect(authKeys(minimalConfig())).toEqual([]);
    });

    test("only for domains whose rua domain differs", () => {
      expect(authKeys({ ...fullConfig(), extraDomains: ["example.org", "example.net"] })).toEqual([
        "dmarc-report-auth-example.org example.com example.org._report._dmarc.example.com",
        "dmarc-report-auth-example.net example.com example.net._report._dmarc.example.com",
      ]);
    });

    test("reports in an extra domain authorise the primary", () => {
      const input: MailConfigInput = { ...fullConfig(), aliases: [{ address: "dmarc@example.org", to: ["alice@example.com"] }], dmarcReports: "dmarc@example.org" };
      expect(authKeys(input)).toEqual(["dmarc-report-auth-example.com example.org example.com._report._dmarc.example.org"]);
      const dmarc = dnsRecords(parseConfig(input), VALUES).find((r) => r.key === "dmarc-example.com")!;
      expect(txtValue(dmarc.content)).toContain("rua=mailto:dmarc@example.org;");
    });
  });

  test("IDN domains appear in xn-- form", () => {
    const records = dnsRecords(parseConfig({ domain: "bücher.example", mailboxes: [{ address: "anna@bücher.example", password: "correct horse battery staple" }] }), VALUES);
    for (const r of records) expect(`${r.zone} ${r.name} ${r.content}`).toMatch(/^[\x20-\x7e]*$/);
    expect(records.find((r) => r.key === "mx-xn--bcher-kva.example")!.content).toBe("mail.xn--bcher-kva.example");
  });

  test("the set of records does not depend on the values", () => {
    const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const key = dkimPublicKeyFromPem(publicKey.export({ type: "spki", format: "pem" }).toString());
    for (const input of [
      minimalConfig(),
      fullConfig(),
      { ...fullConfig(), extraDomains: ["example.org", "example.net"], dkimSelector: "k1", dkimNextSelector: "k2", dnssec: true },
    ]) {
      const config = parseConfig(input);
      const keys = (k: string) => Object.fromEntries(config.dkimSelectors.map((s) => [s, k]));
      const shape = (values: RecordValues) => dnsRecords(config, values).map((rec) => `${rec.key} ${rec.zone} ${rec.name} ${rec.type} ${rec.ttl} ${rec.priority}`);
      const placeholder = shape(placeholderValues(config));
      expect(shape({ ipv4: "198.51.100.77", dkimPublicKeys: keys(key), tlsKeySha256: "ab".repeat(32) })).toEqual(placeholder);
      expect(shape({ ipv4: "192.0.2.9", dkimPublicKeys: keys("A".repeat(800)), tlsKeySha256: "cd".repeat(32) })).toEqual(placeholder);
    }
  });

  test("placeholder values look like real ones", () => {
    const values = placeholderValues(parseConfig({ ...minimalConfig(), dkimNextSelector: "next", dnssec: true }));
    expect(values.ipv4).toMatch(/^192\.0\.2\.\d+$/); // TEST-NET-1
    expect(Object.keys(values.dkimPublicKeys)).toEqual(["mail", "next"]);
    expect(values.dkimPublicKeys.mail).toHaveLength(392);
    expect(values.tlsKeySha256).toMatch(/^[0-9a-f]{64}$/);
  });

  test("an unhosted hostname is refused", () => {
    const config = { ...parseConfig(minimalConfig()), hostname: "mail.example.net" };
    expect(() => dnsRecords(config, VALUES)).toThrow("no hosted zone contains mail.example.net");
  });
});

describe("txtContent and txtValue", () => {
  const byteLength = (s: string) => Buffer.byteLength(s, "utf8");

  test.each([
    ["", ['']],
    ["v=spf1 mx -all", ["v=spf1 mx -all"]],
    ["a".repeat(255), ["a".repeat(255)]],
    ["a".repeat(256), ["a".repeat(255), "a"]],
    ["a".repeat(510), ["a".repeat(255), "a".repeat(255)]],
    ["a".repeat(511), ["a".repeat(255), "a".repeat(255), "a"]],
    // A two-byte character straddling byte 255 moves whole into the next string.
    ["a".repeat(254) + "é" + "b", ["a".repeat(254), "éb"]],
    // A two-byte character ending exactly at byte 255 stays.
    ["a".repeat(253) + "é" + "b", ["a".repeat(253) + "é", "b"]],
    // Three-byte character at every offset across the boundary.
    ["a".repeat(252) + "€" + "b", ["a".repeat(252) + "€", "b"]],
    ["a".repeat(253) + "€" + "b", ["a".repeat(253), "€b"]],
    ["a".repeat(254) + "€" + "b", ["a".repeat(254), "€b"]],
    // Four-byte character (surrogate pair in JS) across the boundary.
    ["a".repeat(253) + "🙂", ["a".repeat(253), "🙂"]],
    ["a".repeat(251) + "🙂" + "c", ["a".repeat(251) + "🙂", "c"]],
    ["é".repeat(200), ["é".repeat(127), "é".repeat(73)]],
  ])("splits %j at byte boundaries", (value, strings) => {
    const content = txtContent(value);
    expect(characterStrings(content)).toEqual(strings);
    expect(txtValue(content)).toBe(value);
  });

  test("quotes and backslashes are escaped after splitting, so each string carries ≤255 bytes", () => {
    const value = '"'.repeat(300) + "\\".repeat(300);
    const content = txtContent(value);
    const strings = characterStrings(content);
    expect(strings.map(byteLength)).toEqual([255, 255, 90]);
    expect(content.startsWith(`"${'\\"'.repeat(255)}" "`)).toBe(true);
    expect(txtValue(content)).toBe(value);
  });

  test("exact rendering of escapes", () => {
    expect(txtContent('say "hi" \\ bye')).toBe('"say \\"hi\\" \\\\ bye"');
    expect(txtContent("")).toBe('""');
    expect(txtContent("a".repeat(254) + "\\")).toBe(`"${"a".repeat(254)}\\\\"`);
    expect(txtContent("a".repeat(255) + '"')).toBe(`"${"a".repeat(255)}" "\\""`);
  });

  test("txtValue(txtContent(x)) === x for many inputs, each string ≤255 bytes", () => {
    // Deterministic pseudo-random strings from an alphabet full of awkward characters.
    const alphabet = ["a", "Z", "0", " ", ";", "=", '"', "\\", "é", "€", "🙂", "ß", "\t", "'", "\n"];
    let seed = 12345;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const inputs: string[] = [];
    for (let n = 0; n < 300; n++) {
      const length = Math.floor(random() * 900);
      let s = "";
      for (let i = 0; i < length; i++) s += alphabet[Math.floor(random() * alphabet.length)];
      inputs.push(s);
    }
    for (const length of [0, 1, 254, 255, 256, 509, 510, 511, 765, 766]) inputs.push("x".repeat(length));
    for (const value of inputs) {
      const content = txtContent(value);
      expect(txtValue(content)).toBe(value);
      const strings = characterStrings(content);
      expect(strings.join("")).toBe(value);
      for (const s of strings) expect(byteLength(s)).toBeLessThanOrEqual(255);
      // Strings are as full as possible: only the last may be short by more than a character.
      for (const s of strings.slice(0, -1)) expect(byteLength(s)).toBeGreaterThanOrEqual(252);
    }
  });

  test("a real 2048-bit DKIM key round-trips", () => {
    const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = publicKey.export({ type: "spki", format: "pem" }).toString();
    const key = dkimPublicKeyFromPem(pem);
    const value = dkimRecordValue(key);
    const content = txtContent(value);
    expect(txtValue(content)).toBe(value);
    expect(characterStrings(content).map(byteLength)).toEqual([255, value.length - 255]);
  });
});

describe("dkimPublicKeyFromPem", () => {
  test("extracts the base64 SubjectPublicKeyInfo of a real key", () => {
    const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = publicKey.export({ type: "spki", format: "pem" }).toString();
    const der = publicKey.export({ type: "spki", format: "der" });
    const key = dkimPublicKeyFromPem(pem);
    expect(key).toBe(der.toString("base64"));
    expect(key).toHaveLength(392);
    expect(key).toMatch(/^MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA/);
    // Windows line endings and surrounding blanks are tolerated.
    expect(dkimPublicKeyFromPem(`\n  ${pem.replace(/\n/g, "\r\n")}  `)).toBe(key);
    expect(dkimRecordValue(key)).toBe(`v=DKIM1; k=rsa; p=${key}`);
  });

  test.each([
    ["empty", ""],
    ["a private key", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ\n-----END PRIVATE KEY-----\n"],
    ["too short", "-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END PUBLIC KEY-----\n"],
    ["not base64", `-----BEGIN PUBLIC KEY-----\n${"*".repeat(400)}\n-----END PUBLIC KEY-----\n`],
  ])("refuses %s", (_title, pem) => {
    expect(() => dkimPublicKeyFromPem(pem)).toThrow("DKIM public key is not a PEM SubjectPublicKeyInfo");
  });
});

describe("zoneFile", () => {
  const config = parseConfig(fullConfig());
  const records = dnsRecords(config, VALUES);

  test("primary zone: header then every record of the zone", () => {
    const text = zoneFile("example.com", records, 2024010101);
    expect(text.endsWith("\n")).toBe(true);
    const lines = text.slice(0, -1).split("\n");
    expect(lines.slice(0, 7)).toEqual([
      "; example.com: records published by mailstack",
      "; SOA and NS below are placeholders; import the other records into your DNS provider.",
      "$ORIGIN example.com.",
      `$TTL ${DEFAULT_TTL}`,
      "@ 3600 IN SOA ns1.example.com. hostmaster.example.com. ( 2024010101 7200 3600 1209600 300 )",
      "@ 3600 IN NS ns1.example.com.",
      "ns1 3600 IN A 192.0.2.53",
    ]);
    const body = lines.slice(7);
    const zoneRecords = records.filter((r) => r.zone === "example.com");
    expect(body).toHaveLength(zoneRecords.length * 2);
    // Every record is preceded by its comment.
    zoneRecords.forEach((r, i) => expect(body[2 * i]).toBe(`; ${r.comment}`));
    expect(body.filter((_, i) => i % 2 === 1)).toEqual([
      "mail.example.com. 3600 IN A 203.0.113.25",
      'mail.example.com. 3600 IN TXT "v=spf1 a -all"',
      'mail.example.com. 3600 IN CAA 0 issue "letsencrypt.org"',
      'mail.example.com. 3600 IN CAA 0 iodef "mailto:postmaster@example.com"',
      ...domainLines("example.com"),
      'example.org._report._dmarc.example.com. 3600 IN TXT "v=DMARC1"',
    ]);
  });

  /** A mail domain's lines in fullConfig (POP3S offered), as a zone file writes them. */
  function domainLines(d: string): string[] {
    return [
      `${d}. 3600 IN MX 10 mail.example.com.`,
      `${d}. 3600 IN TXT "v=spf1 mx -all"`,
      `mail._domainkey.${d}. 3600 IN TXT ${DKIM_CONTENT}`,
      `_dmarc.${d}. 3600 IN TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com; adkim=r; aspf=r"`,
      `_mta-sts.${d}. 3600 IN TXT "v=STSv1; id=${mtaStsId(config)}"`,
      `mta-sts.${d}. 3600 IN CNAME mail.example.com.`,
      `_smtp._tls.${d}. 3600 IN TXT "v=TLSRPTv1; rua=mailto:dmarc@example.com"`,
      `_submissions._tcp.${d}. 3600 IN SRV 0 1 465 mail.example.com.`,
      `_submission._tcp.${d}. 3600 IN SRV 0 1 587 mail.example.com.`,
      `_imaps._tcp.${d}. 3600 IN SRV 0 1 993 mail.example.com.`,
      `_imap._tcp.${d}. 3600 IN SRV 0 0 0 .`,
      `_pop3s._tcp.${d}. 3600 IN SRV 0 1 995 mail.example.com.`,
      `_pop3._tcp.${d}. 3600 IN SRV 0 0 0 .`,
      `autoconfig.${d}. 3600 IN CNAME mail.example.com.`,
      `autodiscover.${d}. 3600 IN CNAME mail.example.com.`,
      `_autodiscover._tcp.${d}. 3600 IN SRV 0 1 443 mail.example.com.`,
    ];
  }

  test("extra zone holds only its own records, and serial defaults to 1", () => {
    const text = zoneFile("example.org", records);
    expect(text).toContain("$ORIGIN example.org.\n");
    expect(text).toContain("( 1 7200 3600 1209600 300 )");
    const data = text.split("\n").filter((l) => l !== "" && !l.startsWith(";") && !l.startsWith("$") && !l.startsWith("@") && !l.startsWith("ns1 "));
    expect(data).toEqual(domainLines("example.org"));
    expect(text).not.toContain("203.0.113.25");
  });

  test("null MX, TLSA and a non-mail zone of its own", () => {
    const c = parseConfig({ ...minimalConfig(), nonMailDomains: ["example.net"], dnssec: true });
    const all = dnsRecords(c, { ...VALUES, tlsKeySha256: "ab".repeat(32) });
    expect(zoneFile("example.com", all)).toContain(`\n_25._tcp.mail.example.com. 3600 IN TLSA 3 1 1 ${"ab".repeat(32)}\n`);
    const net = zoneFile("example.net", all).split("\n").filter((l) => l.startsWith("example.net.") || l.startsWith("_dmarc."));
    expect(net).toEqual(["example.net. 3600 IN MX 0 .", 'example.net. 3600 IN TXT "v=spf1 -all"', '_dmarc.example.net. 3600 IN TXT "v=DMARC1; p=reject; adkim=s; aspf=s"']);
  });

  test("every owner name is absolute", () => {
    for (const zone of dnsZones(config)) {
      for (const line of zoneFile(zone, records).split("\n")) {
        if (line === "" || /^[;$@]/.test(line) || line.startsWith("ns1 ")) continue;
        expect(line.split(" ")[0]).toMatch(/\.$/);
      }
    }
  });
});
