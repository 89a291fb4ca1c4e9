// The record set as each provider receives it: Cloudflare (one record each, SRV/CAA/TLSA as
// data, DNSSEC) and Route 53 (one record set per name and type); DKIM rotation; the PTR order.
import { createHash } from "node:crypto";
import { dkimPublicKeyFromPem, type DnsRecord, dnsRecords, type MailConfigInput, mtaStsId, parseConfig } from "@mailstack/core";
import { MailStack, route53Value } from "@mailstack/pulumi";
import * as pulumi from "@pulumi/pulumi";
import { fullConfig, minimalConfig } from "../support/fixtures";
import { type RecordedResource, type Run, runProgram } from "../support/harness";
import { mockRoute53ZoneId, mockZoneId, stackArgs } from "./args";
import { one, T, txtStrings } from "./helpers";

const R53_RECORD = "aws:route53/record:Record";
const R53_GET_ZONE = "aws:route53/getZone:getZone";
const ZONE_DNSSEC = "cloudflare:index/zoneDnssec:ZoneDnssec";
const SHOP_ZONE_ID = "Z0SHOP0000000000000000";

/** Two domains plus everything optional in DNS: backup MX, SPF include, non-mail domains, verification. */
function multiConfig(): MailConfigInput {
  return {
    ...fullConfig(),
    secondaryMx: [{ host: "mx2.example.net" }],
    spfInclude: ["amazonses.com"],
    nonMailDomains: ["example-shop.com", "parked.example.org"],
    verificationRecords: { "example.org": ["google-site-verification=xyz"], "example-shop.com": ["MS=ms999"] },
  };
}

/** minimalConfig with two verification values at the apex, where the SPF record is too. */
function r53SingleConfig(): MailConfigInput {
  return {
    ...minimalConfig(),
    dnsProvider: "route53",
    verificationRecords: { "example.com": ["google-site-verification=abc", "MS=ms12345"] },
  };
}

let cfSingle: Run; // minimalConfig on Cloudflare
let cfMulti: Run; // multiConfig on Cloudflare, with DNSSEC
let cfMultiStack: MailStack;
let r53Single: Run; // r53SingleConfig
let r53Multi: Run; // multiConfig on Route 53, example-shop.com's zone id given
let r53MultiStack: MailStack;
let rotationNext: Run; // minimalConfig, next key published
let rotationSwitched: Run; // minimalConfig, signing with the next key, the old one still published

const outputsOf = (stack: MailStack) => ({ dnsRecords: stack.dnsRecords, dsRecords: stack.dsRecords, nextSteps: stack.nextSteps });

beforeAll(async () => {
  cfSingle = await runProgram(() => outputsOf(new MailStack("mail", stackArgs(minimalConfig()))));
  cfMulti = await runProgram(() => {
    cfMultiStack = new MailStack("mail", stackArgs({ ...multiConfig(), dnssec: true }));
    return outputsOf(cfMultiStack);
  });
  r53Single = await runProgram(() => outputsOf(new MailStack("mail", stackArgs(r53SingleConfig()))));
  r53Multi = await runProgram(() => {
    r53MultiStack = new MailStack(
      "mail",
      // An output, as a zone created in the same program would give it.
      stackArgs({ ...multiConfig(), dnsProvider: "route53" }, { route53ZoneIds: { "example-shop.com": pulumi.output(SHOP_ZONE_ID) } }),
    );
    return outputsOf(r53MultiStack);
  });
  rotationNext = await runProgram(() => outputsOf(new MailStack("mail", stackArgs({ ...minimalConfig(), dkimNextSelector: "m2026" }))));
  rotationSwitched = await runProgram(() =>
    outputsOf(new MailStack("mail", stackArgs({ ...minimalConfig(), dkimSelector: "m2026", dkimPreviousSelector: "mail" }))),
  );
});

const ipv4 = (run: Run): string => one(run, T.eip).state.publicIp;
const dkimKey = (run: Run, selector: string): string => dkimPublicKeyFromPem(run.named(`mail-dkim-${selector}-key`).state.publicKeyPem);
/** The DKIM TXT value split as DNS character-strings are: 255 bytes, then the rest. */
const dkimStrings = (key: string) => {
  const value = `v=DKIM1; k=rsa; p=${key}`;
  expect(value.length).toBeGreaterThan(255);
  return [value.slice(0, 255), value.slice(255)];
};

/** The core's record set with a run's real values, as the tests expect the providers to get it. */
function expectedRecords(run: Run, config: MailConfigInput): DnsRecord[] {
  const parsed = parseConfig(config);
  const tlsPem = run.named("mail-tls-key").state.publicKeyPem;
  const der = Buffer.from(String(tlsPem).replace(/-----[A-Z ]+-----|\s/g, ""), "base64");
  return dnsRecords(parsed, {
    ipv4: ipv4(run),
    dkimPublicKeys: Object.fromEntries(parsed.dkimSelectors.map((s) => [s, dkimKey(run, s)])),
    tlsKeySha256: createHash("sha256").update(der).digest("hex"),
  });
}

/** The inputs of a Cloudflare record that carry its value, as sent. */
const cfValue = (r: RecordedResource) => ({
  type: r.inputs.type,
  name: r.inputs.name,
  ttl: r.inputs.ttl,
  content: r.inputs.content,
  priority: r.inputs.priority,
  data: r.inputs.data,
  proxied: r.inputs.proxied,
});

describe("Cloudflare", () => {
  test("a single domain: every record with its exact type, name, value, TTL and priority", () => {
    const key = dkimKey(cfSingle, "mail");
    const txt = (name: string, ...strings: string[]) => ({ type: "TXT", name, content: strings.map((s) => `"${s}"`).join(" ") });
    const srv = (service: string, port: number, target = "mail.example.com") => ({
      type: "SRV",
      name: `_${service}._tcp.example.com`,
      priority: 0,
      data: target === "." ? { priority: 0, weight: 0, port: 0, target } : { priority: 0, weight: 1, port, target },
    });
    const cname = (name: string) => ({ type: "CNAME", name, content: "mail.example.com" });
    const expected: Record<string, object> = {
      "host-a": { type: "A", name: "mail.example.com", content: ipv4(cfSingle) },
      "host-spf": txt("mail.example.com", "v=spf1 a -all"),
      "host-caa-issue-letsencrypt.org": { type: "CAA", name: "mail.example.com", data: { flags: 0, tag: "issue", value: "letsencrypt.org" } },
      "host-caa-iodef": { type: "CAA", name: "mail.example.com", data: { flags: 0, tag: "iodef", value: "mailto:postmaster@example.com" } },
      "mx-example.com": { type: "MX", name: "example.com", content: "mail.example.com", priority: 10 },
      "spf-example.com": txt("example.com", "v=spf1 mx -all"),
      "dkim-mail-example.com": txt("mail._domainkey.example.com", ...dkimStrings(key)),
      "dmarc-example.com": txt("_dmarc.example.com", "v=DMARC1; p=quarantine; rua=mailto:alice@example.com; adkim=r; aspf=r"),
      "mta-sts-example.com": txt("_mta-sts.example.com", `v=STSv1; id=${mtaStsId(parseConfig(minimalConfig()))}`),
      "mta-sts-host-example.com": cname("mta-sts.example.com"),
      "tls-rpt-example.com": txt("_smtp._tls.example.com", "v=TLSRPTv1; rua=mailto:alice@example.com"),
      "srv-submissions-example.com": srv("submissions", 465),
      "srv-submission-example.com": srv("submission", 587),
      "srv-imaps-example.com": srv("imaps", 993),
      "srv-imap-example.com": srv("imap", 143, "."),
      "srv-pop3s-example.com": srv("pop3s", 995, "."),
      "srv-pop3-example.com": srv("pop3", 110, "."),
      "autoconfig-example.com": cname("autoconfig.example.com"),
      "autodiscover-example.com": cname("autodiscover.example.com"),
      "srv-autodiscover-example.com": srv("autodiscover", 443),
    };
    const published = cfSingle.ofType(T.dnsRecord);
    expect(published.map((r) => r.name).sort()).toEqual(Object.keys(expected).map((k) => `mail-dns-${k}`).sort());
    for (const [key, want] of Object.entries(expected)) {
      const got = cfValue(cfSingle.named(`mail-dns-${key}`));
      expect({ key, ...got }).toEqual({ key, content: undefined, priority: undefined, data: undefined, ...want, ttl: 3600, proxied: false });
      expect(cfSingle.named(`mail-dns-${key}`).inputs.zoneId).toBe(mockZoneId("example.com"));
    }
  });

  test("several domains: every core record, backup MX, SPF include and non-mail domains in their own zones", () => {
    const expected = expectedRecords(cfMulti, { ...multiConfig(), dnssec: true });
    const published = cfMulti.ofType(T.dnsRecord);
    expect(published.map((r) => r.name).sort()).toEqual(expected.map((r) => `mail-dns-${r.key}`).sort());
    for (const record of expected) {
      const resource = cfMulti.named(`mail-dns-${record.key}`);
      const { kind: _kind, ...data } = record.data ?? { kind: undefined };
      expect({ key: record.key, ...cfValue(resource) }).toEqual({
        key: record.key,
        type: record.type,
        name: record.name,
        ttl: record.ttl,
        content: record.data ? undefined : record.content,
        priority: record.data?.kind === "SRV" ? record.data.priority : record.priority,
        data: record.data ? data : undefined,
        proxied: false,
      });
      expect({ key: record.key, zoneId: resource.inputs.zoneId }).toEqual({ key: record.key, zoneId: mockZoneId(record.zone) });
    }
    const inputs = (key: string) => cfValue(cfMulti.named(`mail-dns-${key}`));
    expect(inputs("mx-mx2.example.net-example.org")).toMatchObject({ type: "MX", name: "example.org", content: "mx2.example.net", priority: 20 });
    expect(inputs("spf-example.org").content).toBe('"v=spf1 mx include:amazonses.com -all"');
    expect(inputs("null-mx-example-shop.com")).toMatchObject({ type: "MX", name: "example-shop.com", content: ".", priority: 0 });
    expect(inputs("null-spf-example-shop.com").content).toBe('"v=spf1 -all"');
    expect(inputs("null-dmarc-parked.example.org")).toMatchObject({ name: "_dmarc.parked.example.org", content: '"v=DMARC1; p=reject; adkim=s; aspf=s"' });
    expect(cfMulti.named("mail-dns-null-mx-parked.example.org").inputs.zoneId).toBe(mockZoneId("example.org"));
    expect(cfMulti.named("mail-dns-null-mx-example-shop.com").inputs.zoneId).toBe(mockZoneId("example-shop.com"));
    const lookups = cfMulti.record.invokes.filter((i) => i.token === T.getZone).map((i) => i.inputs.filter.name);
    expect(lookups.sort()).toEqual(["example-shop.com", "example.com", "example.org"]);
  });

  test("TXT values are quoted strings of at most 255 bytes; each DKIM key needs two", () => {
    for (const run of [cfSingle, cfMulti, rotationNext, rotationSwitched]) {
      for (const r of run.ofType(T.dnsRecord).filter((r) => r.inputs.type === "TXT")) {
        for (const s of txtStrings(r.inputs.content)) expect(Buffer.byteLength(s, "utf8")).toBeLessThanOrEqual(255);
      }
      for (const r of run.ofType(T.dnsRecord).filter((r) => r.inputs.name.includes("._domainkey."))) expect(txtStrings(r.inputs.content)).toHaveLength(2);
    }
  });

  test("DNSSEC: each zone signed and a TLSA record of the TLS key, only when dnssec is on", () => {
    for (const run of [cfSingle, r53Single, r53Multi]) {
      expect(run.ofType(ZONE_DNSSEC)).toEqual([]);
      expect(run.ofType(T.dnsRecord).filter((r) => r.inputs.type === "TLSA")).toEqual([]);
      expect(run.ofType(R53_RECORD).filter((r) => r.inputs.type === "TLSA")).toEqual([]);
    }
    const signed = cfMulti.ofType(ZONE_DNSSEC);
    expect(signed.map((z) => [z.name, z.inputs]).sort()).toEqual(
      ["example-shop.com", "example.com", "example.org"].map((zone) => [`mail-dns-dnssec-${zone}`, { zoneId: mockZoneId(zone), status: "active" }]),
    );
    const tlsPem = cfMulti.named("mail-tls-key").state.publicKeyPem;
    const spki = Buffer.from(String(tlsPem).replace(/-----[A-Z ]+-----|\s/g, ""), "base64");
    expect(cfValue(cfMulti.named("mail-dns-host-tlsa"))).toEqual({
      type: "TLSA",
      name: "_25._tcp.mail.example.com",
      ttl: 3600,
      content: undefined,
      priority: undefined,
      data: { usage: 3, selector: 1, matchingType: 1, certificate: createHash("sha256").update(spki).digest("hex") },
      proxied: false,
    });
  });

  test("DNSSEC: the DS record of every signed zone is an output and a next step", () => {
    const ds = cfMulti.outputs.dsRecords as { zone: string; ds: string; keyTag: number; algorithm: string; digestType: string; digest: string }[];
    expect(ds.map((d) => d.zone).sort()).toEqual(["example-shop.com", "example.com", "example.org"]);
    for (const d of ds) {
      const state = cfMulti.named(`mail-dns-dnssec-${d.zone}`).state;
      expect(d).toEqual({ zone: d.zone, ds: `${d.zone}. IN DS ${state.keyTag} 13 2 ${state.digest}`, keyTag: state.keyTag, algorithm: "13", digestType: "2", digest: state.digest });
      expect(cfMulti.outputs.nextSteps).toContain(d.ds);
    }
    expect(cfMulti.outputs.nextSteps).toMatch(/^7\. DNSSEC: add each zone's DS record at the domain's registrar/m);
    for (const run of [cfSingle, r53Multi]) {
      expect(run.outputs.dsRecords).toEqual([]);
      expect(run.outputs.nextSteps).not.toContain("DNSSEC");
    }
  });
});

describe("Route 53", () => {
  const set = (run: Run, type: string, name: string) => run.named(`mail-dns-${type.toLowerCase()}-${name}`);

  test("a single domain: one record set per name and type, with exact values and TTL", () => {
    const key = dkimKey(r53Single, "mail");
    const expected: [string, string, string[]][] = [
      ["A", "mail.example.com", [ipv4(r53Single)]],
      ["TXT", "mail.example.com", ["v=spf1 a -all"]],
      // Two CAA records at one name: one record set with two values.
      ["CAA", "mail.example.com", ['0 issue "letsencrypt.org"', '0 iodef "mailto:postmaster@example.com"']],
      ["MX", "example.com", ["10 mail.example.com"]],
      // SPF and both verification values share the apex TXT record set.
      ["TXT", "example.com", ["v=spf1 mx -all", "google-site-verification=abc", "MS=ms12345"]],
      // The provider adds the outer quotes: the two strings travel as `a" "b`.
      ["TXT", "mail._domainkey.example.com", [dkimStrings(key).join('" "')]],
      ["TXT", "_dmarc.example.com", ["v=DMARC1; p=quarantine; rua=mailto:alice@example.com; adkim=r; aspf=r"]],
      ["TXT", "_mta-sts.example.com", [`v=STSv1; id=${mtaStsId(parseConfig(minimalConfig()))}`]],
      ["CNAME", "mta-sts.example.com", ["mail.example.com"]],
      ["TXT", "_smtp._tls.example.com", ["v=TLSRPTv1; rua=mailto:alice@example.com"]],
      ["SRV", "_submissions._tcp.example.com", ["0 1 465 mail.example.com"]],
      ["SRV", "_submission._tcp.example.com", ["0 1 587 mail.example.com"]],
      ["SRV", "_imaps._tcp.example.com", ["0 1 993 mail.example.com"]],
      ["SRV", "_imap._tcp.example.com", ["0 0 0 ."]],
      ["SRV", "_pop3s._tcp.example.com", ["0 0 0 ."]],
      ["SRV", "_pop3._tcp.example.com", ["0 0 0 ."]],
      ["CNAME", "autoconfig.example.com", ["mail.example.com"]],
      ["CNAME", "autodiscover.example.com", ["mail.example.com"]],
      ["SRV", "_autodiscover._tcp.example.com", ["0 1 443 mail.example.com"]],
    ];
    const sets = r53Single.ofType(R53_RECORD);
    expect(sets.map((r) => r.name).sort()).toEqual(expected.map(([type, name]) => `mail-dns-${type.toLowerCase()}-${name}`).sort());
    for (const [type, name, records] of expected) {
      expect(set(r53Single, type, name).inputs).toEqual({ zoneId: mockRoute53ZoneId("example.com"), name, type, ttl: 3600, records });
    }
    expect(r53Single.ofType(T.dnsRecord)).toEqual([]);
    expect(r53Single.record.invokes.filter((i) => i.token === R53_GET_ZONE).map((i) => i.inputs)).toEqual([{ name: "example.com", privateZone: false }]);
    expect(r53Single.record.invokes.filter((i) => i.token === T.getZone)).toEqual([]);
  });

  test("several domains: every core record in the set of its name and type, in its zone", () => {
    const expected = expectedRecords(r53Multi, { ...multiConfig(), dnsProvider: "route53" });
    const sets = r53Multi.ofType(R53_RECORD);
    const ids = new Set(expected.map((r) => `${r.type} ${r.name}`));
    expect(sets).toHaveLength(ids.size);
    const zoneIds: Record<string, string> = {
      "example.com": mockRoute53ZoneId("example.com"),
      "example.org": mockRoute53ZoneId("example.org"),
      "example-shop.com": SHOP_ZONE_ID,
    };
    for (const id of ids) {
      const members = expected.filter((r) => `${r.type} ${r.name}` === id);
      const resource = set(r53Multi, members[0].type, members[0].name);
      expect({ id, inputs: resource.inputs }).toEqual({
        id,
        inputs: { zoneId: zoneIds[members[0].zone], name: members[0].name, type: members[0].type, ttl: 3600, records: members.map(route53Value) },
      });
    }
    expect(set(r53Multi, "MX", "example.org").inputs.records).toEqual(["10 mail.example.com", "20 mx2.example.net"]);
    expect(set(r53Multi, "TXT", "example.org").inputs.records).toEqual(["v=spf1 mx include:amazonses.com -all", "google-site-verification=xyz"]);
    expect(set(r53Multi, "MX", "parked.example.org").inputs).toMatchObject({ zoneId: zoneIds["example.org"], records: ["0 ."] });
    expect(set(r53Multi, "TXT", "example-shop.com").inputs).toMatchObject({ zoneId: SHOP_ZONE_ID, records: ["MS=ms999", "v=spf1 -all"] });
    expect(set(r53Multi, "TXT", "example.org._report._dmarc.example.com").inputs).toMatchObject({ zoneId: zoneIds["example.com"], records: ["v=DMARC1"] });
    // The given zone id is not looked up; the others are, as public zones.
    const lookups = r53Multi.record.invokes.filter((i) => i.token === R53_GET_ZONE).map((i) => i.inputs);
    expect(lookups.sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: "example.com", privateZone: false },
      { name: "example.org", privateZone: false },
    ]);
    // By record key, records that share a record set share its resource.
    const verifyKey = expected.find((r) => r.key.startsWith("verify-example.org-"))?.key ?? "";
    expect(r53MultiStack.dns.resources[verifyKey]).toBe(r53MultiStack.dns.resources["spf-example.org"]);
  });

  test("TXT values reach Route 53 as quoted strings of at most 255 bytes", () => {
    for (const run of [r53Single, r53Multi]) {
      for (const r of run.ofType(R53_RECORD).filter((r) => r.inputs.type === "TXT")) {
        // What the provider sends: each value wrapped in quotes.
        for (const value of r.inputs.records as string[]) {
          for (const s of txtStrings(`"${value}"`)) expect(Buffer.byteLength(s, "utf8")).toBeLessThanOrEqual(255);
        }
      }
    }
  });

  test("the PTR record waits for the A record set and for the Elastic IP, so destroy removes it first", () => {
    for (const run of [r53Single, r53Multi]) {
      const ptr = one(run, T.eipDomainName);
      const hostA = set(run, "A", "mail.example.com");
      expect(hostA.inputs.records).toEqual([ipv4(run)]);
      expect(ptr.dependsOn).toEqual(expect.arrayContaining([hostA.urn, one(run, T.eip).urn]));
    }
  });
});

describe("DKIM rotation", () => {
  const dkimRecords = (run: Run) =>
    run
      .ofType(T.dnsRecord)
      .filter((r) => r.inputs.name.endsWith("._domainkey.example.com"))
      .map((r) => [r.name, r.inputs.name, txtStrings(r.inputs.content).join("")])
      .sort();
  const signing = (run: Run) => {
    const files = run.ofType(T.parameter).filter((p) => /\/files\/dkim\/[^/]+\.key$/.test(p.inputs.name));
    expect(files).toHaveLength(1);
    return { file: files[0].inputs.name.replace(/^.*\/files\//, ""), secret: files[0].secretPaths.includes("value"), pem: files[0].inputs.value as string };
  };

  test("step 1: the next key is published beside the signing one, which keeps signing", () => {
    expect(dkimRecords(cfSingle)).toEqual([["mail-dns-dkim-mail-example.com", "mail._domainkey.example.com", `v=DKIM1; k=rsa; p=${dkimKey(cfSingle, "mail")}`]]);
    expect(rotationNext.ofType(T.privateKey).map((k) => k.name).sort()).toEqual(["mail-dkim-m2026-key", "mail-dkim-mail-key", "mail-tls-key"]);
    expect(dkimRecords(rotationNext)).toEqual([
      ["mail-dns-dkim-m2026-example.com", "m2026._domainkey.example.com", `v=DKIM1; k=rsa; p=${dkimKey(rotationNext, "m2026")}`],
      ["mail-dns-dkim-mail-example.com", "mail._domainkey.example.com", `v=DKIM1; k=rsa; p=${dkimKey(rotationNext, "mail")}`],
    ]);
    expect(rotationNext.named("mail-dns-dkim-m2026-example.com").inputs.comment).toContain("next, not yet signing");
    const { file, secret, pem } = signing(rotationNext);
    expect({ file, secret }).toEqual({ file: "dkim/mail.key", secret: true });
    expect(pem).toContain(String(rotationNext.named("mail-dkim-mail-key").state.privateKeyPem).trim());
  });

  test("step 2: signing switches to the next key; both keep their resources and records", () => {
    // The same resource names as in step 1: no key is replaced, so both records stay valid.
    expect(rotationSwitched.ofType(T.privateKey).map((k) => k.name).sort()).toEqual(["mail-dkim-m2026-key", "mail-dkim-mail-key", "mail-tls-key"]);
    expect(dkimRecords(rotationSwitched).map(([name, fqdn]) => [name, fqdn])).toEqual(dkimRecords(rotationNext).map(([name, fqdn]) => [name, fqdn]));
    expect(rotationSwitched.named("mail-dns-dkim-mail-example.com").inputs.comment).toContain("previous, kept for mail in transit");
    const { file, pem } = signing(rotationSwitched);
    expect(file).toBe("dkim/m2026.key");
    expect(pem).toContain(String(rotationSwitched.named("mail-dkim-m2026-key").state.privateKeyPem).trim());
    const runtime = JSON.parse(rotationSwitched.named("mail-parameters-runtime").inputs.content) as { files: Record<string, string> };
    expect(runtime.files["dkim-selectors"]).toContain("example.com m2026");
  });
});
