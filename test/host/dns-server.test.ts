/**
 * The zone files the core exports, checked by two zone checkers and served by a real
 * authoritative server (Knot DNS): `dig` asks it for every record the core intends and must
 * get exactly that data back, and a zone transfer shows nothing else is in the zone.
 */
import { generateKeyPairSync } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  dkimPublicKeyFromPem,
  dkimRecordValue,
  type DnsRecord,
  dnsRecords,
  dnsZones,
  type MailConfigInput,
  parseConfig,
  spkiSha256,
  zoneFile,
} from "@mailstack/core";
import { AuthoritativeDns, characterStrings } from "../support/dns-server";
import { requireTools, run, tempRoot } from "../support/tools";

requireTools("kzonecheck", "named-checkzone", "knotd", "dig");

// The characters a zone file treats specially, inside one TXT value.
const ODD_VERIFICATION = 'odd="quoted\\value"; (paren) $dollar @at';

/** Between them, the two configs publish every record type and both forms of each choice. */
const CASES: [string, MailConfigInput, string[]][] = [
  [
    "three mail domains (one an IDN), POP3 on, the next DKIM key published, host in the primary domain, SES both ways",
    {
      domain: "example.com",
      extraDomains: ["example.org", "bücher.example"],
      mailboxes: [{ address: "alice@example.com", password: "a long test passphrase" }],
      aliases: [{ address: "dmarc@example.org", to: ["alice@example.com"] }],
      // In another domain than two of the three, so those need report authorisation records.
      dmarcReports: "dmarc@example.org",
      dmarcPolicy: "reject",
      dmarcStrictAlignment: true,
      pop3: true,
      dkimSelector: "s2024",
      dkimNextSelector: "s2025",
      secondaryMx: [{ host: "backup-mx.example.net" }, { host: "mx2.example.org", priority: 50 }],
      // SES's MAIL FROM domains (MX and SPF) and its inbound MX after both secondaries.
      sesOutbound: true,
      sesInbound: true,
      sesRegion: "eu-west-1",
      spfInclude: ["amazonses.com", "include:_spf.google.com"],
      mtaSts: "testing",
      caaIssuers: ["letsencrypt.org", "sectigo.com"],
      nonMailDomains: ["static.example.com", "parked.example", "www.parked.example"],
      dnssec: true,
      verificationRecords: {
        "example.com": ["google-site-verification=Xk3_abc-123", ODD_VERIFICATION],
        "parked.example": ["MS=ms12345678"],
        "bücher.example": ["google-site-verification=idn"],
      },
    },
    ["example.com", "example.org", "xn--bcher-kva.example", "parked.example"],
  ],
  [
    "POP3 off, the previous DKIM key kept, host in an extra domain, no CAA, no SES",
    {
      domain: "example.com",
      extraDomains: ["example.org"],
      hostname: "mx.example.org",
      mailboxes: [{ address: "alice@example.com", password: "a long test passphrase" }],
      dkimSelector: "b",
      dkimPreviousSelector: "a",
      caaIssuers: [],
      mtaSts: "none",
      nonMailDomains: ["news.example.org", "example.net"],
      dnssec: true,
      verificationRecords: { "example.org": ["MS=ms87654321"], "example.net": ["google-site-verification=net"] },
    },
    ["example.com", "example.org", "example.net"],
  ],
];

const rsaPublicKey = () =>
  dkimPublicKeyFromPem(generateKeyPairSync("rsa", { modulusLength: 2048, publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } }).publicKey);
const TLS_KEY = generateKeyPairSync("ec", { namedCurve: "prime256v1", publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } });

const absolute = (name: string) => (name === "." ? "." : `${name}.`);

/**
 * The answer dig prints for a record, built from the record's fields (not from the zone
 * file), in dig's presentation form: TLSA data in upper case, TXT as its list of strings.
 */
function expectedRdata(r: DnsRecord): string | string[] {
  if (r.type === "TXT") return characterStrings(r.content);
  if (r.type === "MX") return `${r.priority} ${absolute(r.content)}`;
  if (r.type === "CNAME") return absolute(r.content);
  if (r.data?.kind === "SRV") return `${r.data.priority} ${r.data.weight} ${r.data.port} ${absolute(r.data.target)}`;
  if (r.data?.kind === "CAA") return `${r.data.flags} ${r.data.tag} "${r.data.value}"`;
  if (r.data?.kind === "TLSA") return `${r.data.usage} ${r.data.selector} ${r.data.matchingType} ${r.data.certificate.toUpperCase()}`;
  return r.content;
}

const servedRdata = (type: string, rdata: string): string | string[] => (type === "TXT" ? characterStrings(rdata) : rdata);
const byRdata = (a: string | string[], b: string | string[]) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1);

describe.each(CASES)("%s", (_name, input, zones) => {
  const config = parseConfig(input);
  const dkimKeys = Object.fromEntries(config.dkimSelectors.map((s) => [s, rsaPublicKey()]));
  const records = dnsRecords(config, { ipv4: "198.51.100.25", dkimPublicKeys: dkimKeys, tlsKeySha256: spkiSha256(TLS_KEY.publicKey) });
  const files = Object.fromEntries(dnsZones(config).map((zone) => [zone, zoneFile(zone, records)]));
  let dir: string;
  let server: AuthoritativeDns;

  beforeAll(async () => {
    dir = tempRoot("ms-zones");
    server = await AuthoritativeDns.start(files);
  });
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("the records fall into the zones an operator has: each mail domain and each non-mail apex", () => {
    expect(dnsZones(config)).toEqual(zones);
    expect([...new Set(records.map((r) => r.zone))].sort()).toEqual([...zones].sort());
  });

  test.each(zones)("kzonecheck and named-checkzone accept the zone file of %s", (zone) => {
    const file = join(dir, `${zone}.zone`);
    writeFileSync(file, files[zone]);
    const knot = run("kzonecheck", ["-o", zone, file]);
    expect({ status: knot.status, output: knot.stdout + knot.stderr }).toEqual({ status: 0, output: "" });
    const bind = run("named-checkzone", ["-i", "full", "-k", "fail", "-n", "fail", "-M", "fail", "-S", "fail", zone, file]);
    const output = (bind.stdout + bind.stderr).split("\n");
    expect({ status: bind.status, output: output.filter((l) => !/ has no address(es)? records /.test(l)) }).toEqual({ status: 0, output: [`zone ${zone}/IN: loaded serial 1`, "OK", ""] });
    // BIND only notes MX hosts without an address in this file; the stack publishes the
    // mail host's (in its own zone) and secondary MX hosts are the operator's.
    const unaddressed = output.flatMap((l) => l.match(/\/MX '([^']+)'.* has no address(?:es)? records/)?.slice(1) ?? []);
    const inZone = records.filter((r) => r.zone === zone);
    const mxTargets = inZone.filter((r) => r.type === "MX" && r.content !== ".").map((r) => r.content);
    expect(unaddressed.sort()).toEqual([...new Set(mxTargets.filter((t) => !inZone.some((r) => r.type === "A" && r.name === t)))].sort());
  });

  // One question per name and type, as a resolver asks: the whole RRset must be what the core intends.
  const questions = [...new Map(records.map((r) => [`${r.name} ${r.type}`, { name: r.name, type: r.type }])).values()];
  test.each(questions)("dig $name $type answers authoritatively with exactly the intended data", ({ name, type }) => {
    const answer = server.dig(name, type);
    expect(answer.status).toBe("NOERROR");
    expect(answer.flags).toContain("aa");
    const intended = records.filter((r) => r.name === name && r.type === type);
    expect(answer.records.map((a) => ({ name: a.name, ttl: a.ttl, type: a.type, rdata: servedRdata(type, a.rdata) })).sort((a, b) => byRdata(a.rdata, b.rdata))).toEqual(
      intended.map((r) => ({ name: absolute(r.name), ttl: r.ttl, type, rdata: expectedRdata(r) })).sort((a, b) => byRdata(a.rdata, b.rdata)),
    );
  });

  test.each(zones)("a zone transfer of %s holds the intended records and nothing else", (zone) => {
    const placeholders = [`${zone}. SOA`, `${zone}. NS`, `ns1.${zone}. A`];
    const served = server
      .transfer(zone)
      .filter((a) => !placeholders.includes(`${a.name} ${a.type}`))
      .map((a) => `${a.name} ${a.ttl} ${a.type} ${JSON.stringify(servedRdata(a.type, a.rdata))}`);
    const intended = records.filter((r) => r.zone === zone).map((r) => `${absolute(r.name)} ${r.ttl} ${r.type} ${JSON.stringify(expectedRdata(r))}`);
    expect(served.sort()).toEqual(intended.sort());
  });

  test("TXT values survive quoting and splitting: the DKIM keys, SPF with its includes, verification values", () => {
    const txt = (name: string) => server.dig(name, "TXT").records.map((a) => characterStrings(a.rdata));
    for (const domain of config.domains) {
      for (const selector of config.dkimSelectors) {
        const [strings] = txt(`${selector}._domainkey.${domain}`);
        expect(strings.join("")).toBe(dkimRecordValue(dkimKeys[selector]));
        // A 2048-bit key does not fit one character-string.
        expect(strings.length).toBeGreaterThan(1);
        for (const s of strings) expect(Buffer.byteLength(s)).toBeLessThanOrEqual(255);
      }
      expect(txt(domain).map((s) => s.join(""))).toContain(["v=spf1 mx", ...config.spfIncludes.map((d) => `include:${d}`), "-all"].join(" "));
    }
    for (const v of config.verificationRecords) expect(txt(v.domain).map((s) => s.join(""))).toContain(v.value);
  });
});
