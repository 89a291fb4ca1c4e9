import { generateKeyPairSync } from "node:crypto";
import {
  DEFAULT_TTL,
  dkimPublicKeyFromPem,
  dkimRecordValue,
  type DnsRecord,
  dnsRecords,
  type MailConfigInput,
  parseConfig,
  PLACEHOLDER_VALUES,
  type RecordValues,
  txtContent,
  txtValue,
  zoneFile,
} from "@mailstack/core";
import { fullConfig, minimalConfig } from "../support/fixtures";

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/** A fixed stand-in of the length of a 2048-bit RSA SubjectPublicKeyInfo in base64. */
const KEY = Array.from({ length: 392 }, (_, i) => B64[(i * 7) % 64]).join("");
const VALUES: RecordValues = { ipv4: "203.0.113.25", dkimPublicKey: KEY };
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

describe("dnsRecords", () => {
  test("single-domain config: exact records", () => {
    const records = dnsRecords(parseConfig(minimalConfig()), VALUES);
    const expected: Omit<DnsRecord, "comment">[] = [
      { key: "host-a", zone: "example.com", name: "mail.example.com", type: "A", content: "203.0.113.25", ttl: 3600 },
      { key: "host-spf", zone: "example.com", name: "mail.example.com", type: "TXT", content: '"v=spf1 a -all"', ttl: 3600 },
      { key: "mx-example.com", zone: "example.com", name: "example.com", type: "MX", content: "mail.example.com", ttl: 3600, priority: 10 },
      { key: "spf-example.com", zone: "example.com", name: "example.com", type: "TXT", content: '"v=spf1 mx -all"', ttl: 3600 },
      { key: "dkim-mail-example.com", zone: "example.com", name: "mail._domainkey.example.com", type: "TXT", content: DKIM_CONTENT, ttl: 3600 },
      {
        key: "dmarc-example.com",
        zone: "example.com",
        name: "_dmarc.example.com",
        type: "TXT",
        content: '"v=DMARC1; p=quarantine; rua=mailto:alice@example.com; adkim=r; aspf=r"',
        ttl: 3600,
      },
    ];
    expect(records.map(({ comment: _c, ...rest }) => rest)).toEqual(expected);
    for (const r of records) expect(r.comment.length).toBeGreaterThan(10);
    expect(records.find((r) => r.type !== "MX" && r.priority !== undefined)).toBeUndefined();
  });

  test("two-domain config (fullConfig): exact records", () => {
    const records = dnsRecords(parseConfig(fullConfig()), VALUES);
    const dmarc = '"v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com; adkim=r; aspf=r"';
    const expected: Omit<DnsRecord, "comment">[] = [
      { key: "host-a", zone: "example.com", name: "mail.example.com", type: "A", content: "203.0.113.25", ttl: 3600 },
      { key: "host-spf", zone: "example.com", name: "mail.example.com", type: "TXT", content: '"v=spf1 a -all"', ttl: 3600 },
      { key: "mx-example.com", zone: "example.com", name: "example.com", type: "MX", content: "mail.example.com", ttl: 3600, priority: 10 },
      { key: "spf-example.com", zone: "example.com", name: "example.com", type: "TXT", content: '"v=spf1 mx -all"', ttl: 3600 },
      { key: "dkim-mail-example.com", zone: "example.com", name: "mail._domainkey.example.com", type: "TXT", content: DKIM_CONTENT, ttl: 3600 },
      { key: "dmarc-example.com", zone: "example.com", name: "_dmarc.example.com", type: "TXT", content: dmarc, ttl: 3600 },
      { key: "mx-example.org", zone: "example.org", name: "example.org", type: "MX", content: "mail.example.com", ttl: 3600, priority: 10 },
      { key: "spf-example.org", zone: "example.org", name: "example.org", type: "TXT", content: '"v=spf1 mx -all"', ttl: 3600 },
      { key: "dkim-mail-example.org", zone: "example.org", name: "mail._domainkey.example.org", type: "TXT", content: DKIM_CONTENT, ttl: 3600 },
      { key: "dmarc-example.org", zone: "example.org", name: "_dmarc.example.org", type: "TXT", content: dmarc, ttl: 3600 },
      {
        key: "dmarc-report-auth-example.org",
        zone: "example.com",
        name: "example.org._report._dmarc.example.com",
        type: "TXT",
        content: '"v=DMARC1"',
        ttl: 3600,
      },
    ];
    expect(records.map(({ comment: _c, ...rest }) => rest)).toEqual(expected);
    const keys = records.map((r) => r.key);
    expect(new Set(keys).size).toBe(keys.length);
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
    const real: RecordValues = { ipv4: "198.51.100.77", dkimPublicKey: dkimPublicKeyFromPem(publicKey.export({ type: "spki", format: "pem" }).toString()) };
    for (const input of [minimalConfig(), fullConfig(), { ...fullConfig(), extraDomains: ["example.org", "example.net"], dkimSelector: "k1" }]) {
      const config = parseConfig(input);
      const shape = (values: RecordValues) => dnsRecords(config, values).map((r) => `${r.key} ${r.zone} ${r.name} ${r.type} ${r.ttl} ${r.priority}`);
      expect(shape(real)).toEqual(shape(PLACEHOLDER_VALUES));
      expect(shape(VALUES)).toEqual(shape(PLACEHOLDER_VALUES));
      expect(shape({ ipv4: "192.0.2.9", dkimPublicKey: "A".repeat(800) })).toEqual(shape(PLACEHOLDER_VALUES));
    }
  });

  test("placeholder values look like real ones", () => {
    expect(PLACEHOLDER_VALUES.ipv4).toMatch(/^192\.0\.2\.\d+$/); // TEST-NET-1
    expect(PLACEHOLDER_VALUES.dkimPublicKey).toHaveLength(392);
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
      "example.com. 3600 IN MX 10 mail.example.com.",
      'example.com. 3600 IN TXT "v=spf1 mx -all"',
      `mail._domainkey.example.com. 3600 IN TXT ${DKIM_CONTENT}`,
      '_dmarc.example.com. 3600 IN TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com; adkim=r; aspf=r"',
      'example.org._report._dmarc.example.com. 3600 IN TXT "v=DMARC1"',
    ]);
  });

  test("extra zone holds only its own records, and serial defaults to 1", () => {
    const text = zoneFile("example.org", records);
    expect(text).toContain("$ORIGIN example.org.\n");
    expect(text).toContain("( 1 7200 3600 1209600 300 )");
    const data = text.split("\n").filter((l) => l !== "" && !l.startsWith(";") && !l.startsWith("$") && !l.startsWith("@") && !l.startsWith("ns1 "));
    expect(data).toEqual([
      "example.org. 3600 IN MX 10 mail.example.com.",
      'example.org. 3600 IN TXT "v=spf1 mx -all"',
      `mail._domainkey.example.org. 3600 IN TXT ${DKIM_CONTENT}`,
      '_dmarc.example.org. 3600 IN TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com; adkim=r; aspf=r"',
    ]);
    expect(text).not.toContain("203.0.113.25");
  });

  test("every owner name is absolute", () => {
    for (const zone of config.domains) {
      for (const line of zoneFile(zone, records).split("\n")) {
        if (line === "" || /^[;$@]/.test(line) || line.startsWith("ns1 ")) continue;
        expect(line.split(" ")[0]).toMatch(/\.$/);
      }
    }
  });
});
