import { createHash } from "node:crypto";
import type { MailConfig } from "./config";
import { domainOf, isWithin } from "./names";
import { SES_MAIL_FROM_SPF, sesFeedbackMx, sesInboundMx, sesMailFromDomain } from "./ses";

/** The record types mailstack publishes. */
export type RecordType = "A" | "CNAME" | "MX" | "TXT" | "SRV" | "CAA" | "TLSA";

/** Fields of the record types whose data has several parts, as providers take them apart. */
export type RecordData =
  | {
      /** An SRV record (RFC 2782). */
      kind: "SRV";
      /** Lower is tried first. */
      priority: number;
      /** Share among records of the same priority. */
      weight: number;
      /** The service's port. */
      port: number;
      /** The host offering it; "." for a service not offered (RFC 6186). */
      target: string;
    }
  | {
      /** A CAA record (RFC 8659). */
      kind: "CAA";
      /** 0: not critical. */
      flags: number;
      /** `issue`: a CA that may issue; `iodef`: where CAs report violations. */
      tag: "issue" | "iodef";
      /** The CA's domain, or the report address as a mailto: URL. */
      value: string;
    }
  | {
      /** A TLSA record (RFC 6698), for DANE. */
      kind: "TLSA";
      /** Certificate usage: 3, DANE-EE (the server's own key). */
      usage: number;
      /** Selector: 1, the SubjectPublicKeyInfo. */
      selector: number;
      /** Matching type: 1, SHA-256. */
      matchingType: number;
      /** The hex digest. */
      certificate: string;
    };

/** One DNS record, provider-neutral. Names and targets are ASCII FQDNs without a trailing dot. */
export interface DnsRecord {
  /** Stable logical id; components derive resource names from it, so it must never change meaning. */
  key: string;
  /** The zone that holds the record: a hosted domain, or a non-mail domain outside them. */
  zone: string;
  /** The record's name, an FQDN such as `_dmarc.example.com`. */
  name: string;
  /** The record's type. */
  type: RecordType;
  /**
   * A: the address; CNAME and MX: the target host ("." for a null MX); TXT: quoted strings of
   * at most 255 bytes each; SRV, CAA, TLSA: the presentation form, with `data` taken apart.
   */
  content: string;
  /** Time to live in seconds. */
  ttl: number;
  /** MX preference. */
  priority?: number;
  /** SRV, CAA and TLSA: the content taken apart; undefined for the other types. */
  data?: RecordData;
  /** Why the record exists, shown in plans and in the provider's record comment. */
  comment: string;
}

/** Values known only once the cloud resources exist. */
export interface RecordValues {
  /** The Elastic IP of the mail host. */
  ipv4: string;
  /** Base64 SubjectPublicKeyInfo of each published DKIM key, by selector. */
  dkimPublicKeys: Record<string, string>;
  /** Hex SHA-256 of the TLS key's SubjectPublicKeyInfo (DER); needed when DNSSEC is on. */
  tlsKeySha256?: string;
}

/** TTL in seconds of records that ask for no other. */
export const DEFAULT_TTL = 3600;

/**
 * Quotes a TXT value as DNS character-strings of at most 255 bytes each. Providers such as
 * Cloudflare and Route 53 store long values this way; sending them pre-split keeps previews
 * free of false diffs.
 */
export function txtContent(value: string): string {
  const bytes = Buffer.from(value, "utf8");
  const parts: string[] = [];
  for (let start = 0; start < bytes.length || parts.length === 0; ) {
    let end = Math.min(start + 255, bytes.length);
    // Never split inside a multi-byte UTF-8 sequence.
    while (end < bytes.length && (bytes[end] & 0xc0) === 0x80) end--;
    parts.push(bytes.subarray(start, end).toString("utf8"));
    start = end;
  }
  return parts.map((p) => `"${p.replace(/["\\]/g, (c) => `\\${c}`)}"`).join(" ");
}

/** Joins the character-strings of a quoted TXT content back into the value they carry. */
export function txtValue(content: string): string {
  const strings = content.match(/"((?:[^"\\]|\\.)*)"/g) ?? [];
  return strings.map((s) => s.slice(1, -1).replace(/\\(.)/g, "$1")).join("");
}

/** The `p=` value of a DKIM record from a PEM public key (SubjectPublicKeyInfo). */
export function dkimPublicKeyFromPem(pem: string): string {
  const body = pem.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "").replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]+=*$/.test(body) || body.length < 100) {
    throw new Error("DKIM public key is not a PEM SubjectPublicKeyInfo (-----BEGIN PUBLIC KEY-----)");
  }
  return body;
}

/** Hex SHA-256 of a PEM public key's DER SubjectPublicKeyInfo: the data of a TLSA 3 1 1 record. */
export function spkiSha256(publicKeyPem: string): string {
  const body = publicKeyPem.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "").replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]+=*$/.test(body)) throw new Error("TLS public key is not a PEM SubjectPublicKeyInfo (-----BEGIN PUBLIC KEY-----)");
  return createHash("sha256").update(Buffer.from(body, "base64")).digest("hex");
}

/** The DKIM TXT value for a base64 public key: `v=DKIM1; k=rsa; p=<key>`, before splitting. */
export function dkimRecordValue(publicKey: string): string {
  return `v=DKIM1; k=rsa; p=${publicKey}`;
}

/**
 * Every zone the stack writes records into: the mail domains, and the non-mail domains that
 * do not lie within a mail domain or another non-mail domain (www.parked.example goes into
 * parked.example, which has no delegation for it).
 */
export function dnsZones(config: MailConfig): string[] {
  const apexes = [...config.domains, ...config.nonMailDomains];
  return apexes.filter((n, i) => i < config.domains.length || !apexes.some((d) => d !== n && isWithin(n, d)));
}

function zoneOf(config: MailConfig, name: string): string {
  // The longest zone containing the name owns it (example.com vs sub.example.com).
  const zone = dnsZones(config).sort((a, b) => b.length - a.length).find((d) => isWithin(name, d));
  if (!zone) throw new Error(`no hosted zone contains ${name}`);
  return zone;
}

/** Seconds an MTA-STS policy may be cached: a week when enforced, a day while testing. */
function mtaStsMaxAge(mode: MailConfig["mtaSts"]): number {
  return mode === "enforce" ? 604800 : 86400;
}

/** The MTA-STS policy file (RFC 8461 §3.2), the same for every mail domain. */
export function mtaStsPolicy(config: MailConfig): string {
  const mx = config.mtaSts === "none" ? [] : config.mx.map((m) => `mx: ${m.host}\n`);
  return `version: STSv1\nmode: ${config.mtaSts}\n${mx.join("")}max_age: ${mtaStsMaxAge(config.mtaSts)}\n`;
}

/** The policy id: derived from the text, so it changes exactly when the policy does. */
export function mtaStsId(config: MailConfig): string {
  return createHash("sha256").update(mtaStsPolicy(config)).digest("hex").slice(0, 20);
}

/** Client services announced by RFC 6186 SRV records; port 0 with target "." means "not offered". */
function mailServices(config: MailConfig): { service: string; port: number; offered: boolean; what: string }[] {
  return [
    { service: "submissions", port: 465, offered: true, what: "mail submission over TLS" },
    { service: "submission", port: 587, offered: true, what: "mail submission with STARTTLS" },
    { service: "imaps", port: 993, offered: true, what: "IMAP over TLS" },
    { service: "imap", port: 143, offered: false, what: "plaintext IMAP" },
    { service: "pop3s", port: 995, offered: config.pop3, what: "POP3 over TLS" },
    { service: "pop3", port: 110, offered: false, what: "plaintext POP3" },
  ];
}

function srv(key: string, zone: string, name: string, port: number, target: string, comment: string, priority = 0, weight = 1): DnsRecord {
  const data = target === "." ? { priority: 0, weight: 0, port: 0, target } : { priority, weight, port, target };
  return {
    key,
    zone,
    name,
    type: "SRV",
    content: `${data.priority} ${data.weight} ${data.port} ${target}`,
    ttl: DEFAULT_TTL,
    data: { kind: "SRV", ...data },
    comment,
  };
}

/** Short stable id of a value, for record keys that must not shift when a list changes. */
function digest(value: string): string {
  return createHash("sha256").update(value).digest("hex").slice(0, 8);
}

/**
 * Every record the stack publishes, in a stable order. The set of keys depends only on the
 * config, never on `values`, so resources can be declared before the values exist.
 */
export function dnsRecords(config: MailConfig, values: RecordValues): DnsRecord[] {
  const host = config.hostname;
  const hostZone = zoneOf(config, host);
  const record = (key: string, zone: string, name: string, type: RecordType, content: string, comment: string): DnsRecord => ({
    key,
    zone,
    name,
    type,
    content,
    ttl: DEFAULT_TTL,
    comment,
  });
  const records: DnsRecord[] = [
    record("host-a", hostZone, host, "A", values.ipv4, "mail host address; its reverse DNS (PTR) names it back"),
    record("host-spf", hostZone, host, "TXT", txtContent("v=spf1 a -all"), "SPF for the HELO name, so receivers' HELO checks pass"),
  ];
  // CAA on the host name only: the web names below are CNAMEs to it, and a CAA on the apex
  // would also bind the certificates of the domain's website.
  for (const ca of config.caaIssuers) {
    records.push({
      ...record(`host-caa-issue-${ca}`, hostZone, host, "CAA", `0 issue "${ca}"`, `only ${ca} may issue certificates for the mail host`),
      data: { kind: "CAA", flags: 0, tag: "issue", value: ca },
    });
  }
  if (config.caaIssuers.length > 0) {
    const iodef = `mailto:postmaster@${config.domain}`;
    records.push({
      ...record("host-caa-iodef", hostZone, host, "CAA", `0 iodef "${iodef}"`, "where CAs report refused certificate requests"),
      data: { kind: "CAA", flags: 0, tag: "iodef", value: iodef },
    });
  }
  if (config.dnssec) {
    if (values.tlsKeySha256 === undefined) throw new Error("DNSSEC is on but the TLS key's hash is missing, so no TLSA record can be built");
    const hash = values.tlsKeySha256.toLowerCase();
    records.push({
      ...record("host-tlsa", hostZone, `_25._tcp.${host}`, "TLSA", `3 1 1 ${hash}`, "DANE: the SHA-256 of the TLS key that port 25 presents"),
      data: { kind: "TLSA", usage: 3, selector: 1, matchingType: 1, certificate: hash },
    });
  }

  const alignment = config.dmarc.strictAlignment ? "s" : "r";
  const reportDomain = domainOf(config.dmarc.reports);
  const spf = ["v=spf1", "mx", ...config.spfIncludes.map((d) => `include:${d}`), "-all"].join(" ");
  for (const domain of config.domains) {
    config.mx.forEach((mx, i) => {
      records.push({
        ...record(i === 0 ? `mx-${domain}` : `mx-${mx.host}-${domain}`, domain, domain, "MX", mx.host, i === 0 ? "where other servers deliver mail for the domain" : mxComment(config, mx.host)),
        priority: mx.priority,
      });
    });
    if (config.ses?.outbound) {
      const mailFrom = sesMailFromDomain(config, domain);
      records.push(
        { ...record(`ses-mail-from-mx-${domain}`, domain, mailFrom, "MX", sesFeedbackMx(config.ses.region), "SES's envelope sender domain: bounces and complaints go to SES"), priority: 10 },
        record(`ses-mail-from-spf-${domain}`, domain, mailFrom, "TXT", txtContent(SES_MAIL_FROM_SPF), "only SES sends with this envelope sender, so SPF aligns with the From for DMARC"),
      );
    }
    records.push(record(`spf-${domain}`, domain, domain, "TXT", txtContent(spf), config.spfIncludes.length > 0 ? `the MX hosts and ${config.spfIncludes.join(", ")} may send as this domain` : "only the MX host may send as this domain"));
    for (const selector of config.dkimSelectors) {
      const publicKey = values.dkimPublicKeys[selector];
      if (publicKey === undefined) throw new Error(`no DKIM public key for selector ${selector}`);
      const role = selector === config.dkimSelector ? "signing" : selector === config.dkimNextSelector ? "next, not yet signing" : "previous, kept for mail in transit";
      records.push(record(`dkim-${selector}-${domain}`, domain, `${selector}._domainkey.${domain}`, "TXT", txtContent(dkimRecordValue(publicKey)), `DKIM key for selector ${selector} (${role})`));
    }
    records.push(
      record(
        `dmarc-${domain}`,
        domain,
        `_dmarc.${domain}`,
        "TXT",
        txtContent(`v=DMARC1; p=${config.dmarc.policy}; rua=mailto:${config.dmarc.reports}; adkim=${alignment}; aspf=${alignment}`),
        `DMARC policy (${config.dmarc.policy}) and aggregate reports to ${config.dmarc.reports}`,
      ),
    );
    if (reportDomain !== domain) {
      // RFC 7489 §7.1: a report address in another domain must authorise this one.
      records.push(record(`dmarc-report-auth-${domain}`, zoneOf(config, reportDomain), `${domain}._report._dmarc.${reportDomain}`, "TXT", txtContent("v=DMARC1"), `lets ${reportDomain} receive DMARC reports about ${domain}`));
    }
    records.push(
      record(`mta-sts-${domain}`, domain, `_mta-sts.${domain}`, "TXT", txtContent(`v=STSv1; id=${mtaStsId(config)}`), `MTA-STS (${config.mtaSts}): senders fetch the policy from mta-sts.${domain}`),
      record(`mta-sts-host-${domain}`, domain, `mta-sts.${domain}`, "CNAME", host, "serves the MTA-STS policy over HTTPS"),
      record(`tls-rpt-${domain}`, domain, `_smtp._tls.${domain}`, "TXT", txtContent(`v=TLSRPTv1; rua=mailto:${config.dmarc.reports}`), `TLS failure reports (TLS-RPT) to ${config.dmarc.reports}`),
    );
    for (const s of mailServices(config)) {
      records.push(srv(`srv-${s.service}-${domain}`, domain, `_${s.service}._tcp.${domain}`, s.port, s.offered ? host : ".", s.offered ? `mail clients find ${s.what} here (RFC 6186)` : `${s.what} is not offered (RFC 6186)`));
    }
    records.push(
      record(`autoconfig-${domain}`, domain, `autoconfig.${domain}`, "CNAME", host, "Thunderbird-style clients fetch their settings here"),
      record(`autodiscover-${domain}`, domain, `autodiscover.${domain}`, "CNAME", host, "Outlook-style clients fetch their settings here"),
      srv(`srv-autodiscover-${domain}`, domain, `_autodiscover._tcp.${domain}`, 443, host, "Outlook finds its settings endpoint here"),
    );
  }
  for (const v of config.verificationRecords) {
    records.push(record(`verify-${v.domain}-${digest(v.value)}`, zoneOf(config, v.domain), v.domain, "TXT", txtContent(v.value), "domain verification for a postmaster tool"));
  }
  for (const domain of config.nonMailDomains) {
    const zone = zoneOf(config, domain);
    records.push(
      { ...record(`null-mx-${domain}`, zone, domain, "MX", ".", "null MX (RFC 7505): this domain receives no mail"), priority: 0 },
      record(`null-spf-${domain}`, zone, domain, "TXT", txtContent("v=spf1 -all"), "this domain sends no mail"),
      record(`null-dmarc-${domain}`, zone, `_dmarc.${domain}`, "TXT", txtContent("v=DMARC1; p=reject; adkim=s; aspf=s"), "receivers reject mail claiming to be from this domain"),
    );
  }
  return records;
}

function mxComment(config: MailConfig, host: string): string {
  return config.ses?.inbound && host === sesInboundMx(config.ses.region)
    ? "Amazon SES, tried last: holds mail in S3 while the mail host is away"
    : "backup MX, tried when the mail host does not answer";
}

/** Placeholder values for computing the shape of the record set before resources exist. */
export function placeholderValues(config: MailConfig): RecordValues {
  return {
    ipv4: "192.0.2.1",
    dkimPublicKeys: Object.fromEntries(config.dkimSelectors.map((s) => [s, "A".repeat(392)])),
    tlsKeySha256: config.dnssec ? "0".repeat(64) : undefined,
  };
}

function absolute(name: string): string {
  return name === "." ? name : `${name}.`;
}

/**
 * A BIND zone file for one zone. SOA and NS are placeholders (your DNS provider supplies its
 * own); everything else is exactly what the stack publishes.
 */
export function zoneFile(zone: string, records: DnsRecord[], serial = 1): string {
  const lines = [
    `; ${zone}: records published by mailstack`,
    "; SOA and NS below are placeholders; import the other records into your DNS provider.",
    `$ORIGIN ${absolute(zone)}`,
    `$TTL ${DEFAULT_TTL}`,
    `@ ${DEFAULT_TTL} IN SOA ns1.${absolute(zone)} hostmaster.${absolute(zone)} ( ${serial} 7200 3600 1209600 300 )`,
    `@ ${DEFAULT_TTL} IN NS ns1.${absolute(zone)}`,
    `ns1 ${DEFAULT_TTL} IN A 192.0.2.53`,
  ];
  for (const r of records.filter((r) => r.zone === zone)) {
    const owner = absolute(r.name);
    let rdata: string;
    if (r.type === "MX") rdata = `${r.priority ?? 10} ${absolute(r.content)}`;
    else if (r.type === "CNAME") rdata = absolute(r.content);
    else if (r.data?.kind === "SRV") rdata = `${r.data.priority} ${r.data.weight} ${r.data.port} ${absolute(r.data.target)}`;
    else rdata = r.content;
    lines.push(`; ${r.comment}`, `${owner} ${r.ttl} IN ${r.type} ${rdata}`);
  }
  return lines.join("\n") + "\n";
}
