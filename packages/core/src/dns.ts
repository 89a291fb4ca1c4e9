import type { MailConfig } from "./config";
import { domainOf, isWithin } from "./names";

export type RecordType = "A" | "MX" | "TXT";

/** One DNS record, provider-neutral. Names and targets are ASCII FQDNs without a trailing dot. */
export interface DnsRecord {
  /** Stable logical id; components derive resource names from it, so it must never change meaning. */
  key: string;
  /** The hosted domain whose zone holds the record. */
  zone: string;
  name: string;
  type: RecordType;
  /** A: the address; MX: the target host; TXT: quoted strings of at most 255 bytes each. */
  content: string;
  ttl: number;
  priority?: number;
  /** Why the record exists, shown in plans and in the provider's record comment. */
  comment: string;
}

/** Values known only once the cloud resources exist. */
export interface RecordValues {
  /** The Elastic IP of the mail host. */
  ipv4: string;
  /** Base64 SubjectPublicKeyInfo of the DKIM signing key. */
  dkimPublicKey: string;
}

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

export function dkimRecordValue(publicKey: string): string {
  return `v=DKIM1; k=rsa; p=${publicKey}`;
}

function zoneOf(config: MailConfig, name: string): string {
  // The longest hosted domain containing the name owns it (example.com vs sub.example.com).
  const zone = [...config.domains].sort((a, b) => b.length - a.length).find((d) => isWithin(name, d));
  if (!zone) throw new Error(`no hosted zone contains ${name}`);
  return zone;
}

/**
 * Every record the stack publishes, in a stable order. The set of keys depends only on the
 * config, never on `values`, so resources can be declared before the values exist.
 */
export function dnsRecords(config: MailConfig, values: RecordValues): DnsRecord[] {
  const host = config.hostname;
  const hostZone = zoneOf(config, host);
  const records: DnsRecord[] = [
    {
      key: "host-a",
      zone: hostZone,
      name: host,
      type: "A",
      content: values.ipv4,
      ttl: DEFAULT_TTL,
      comment: "mail host address; its reverse DNS (PTR) names it back",
    },
    {
      key: "host-spf",
      zone: hostZone,
      name: host,
      type: "TXT",
      content: txtContent("v=spf1 a -all"),
      ttl: DEFAULT_TTL,
      comment: "SPF for the HELO name, so receivers' HELO checks pass",
    },
  ];
  const alignment = config.dmarc.strictAlignment ? "s" : "r";
  const reportDomain = domainOf(config.dmarc.reports);
  for (const domain of config.domains) {
    records.push(
      {
        key: `mx-${domain}`,
        zone: domain,
        name: domain,
        type: "MX",
        content: host,
        priority: 10,
        ttl: DEFAULT_TTL,
        comment: "where other servers deliver mail for the domain",
      },
      {
        key: `spf-${domain}`,
        zone: domain,
        name: domain,
        type: "TXT",
        content: txtContent("v=spf1 mx -all"),
        ttl: DEFAULT_TTL,
        comment: "only the MX host may send as this domain",
      },
      {
        key: `dkim-${config.dkimSelector}-${domain}`,
        zone: domain,
        name: `${config.dkimSelector}._domainkey.${domain}`,
        type: "TXT",
        content: txtContent(dkimRecordValue(values.dkimPublicKey)),
        ttl: DEFAULT_TTL,
        comment: `DKIM public key for selector ${config.dkimSelector}`,
      },
      {
        key: `dmarc-${domain}`,
        zone: domain,
        name: `_dmarc.${domain}`,
        type: "TXT",
        content: txtContent(
          `v=DMARC1; p=${config.dmarc.policy}; rua=mailto:${config.dmarc.reports}; adkim=${alignment}; aspf=${alignment}`,
        ),
        ttl: DEFAULT_TTL,
        comment: `DMARC policy (${config.dmarc.policy}) and aggregate reports to ${config.dmarc.reports}`,
      },
    );
    if (reportDomain !== domain) {
      // RFC 7489 §7.1: a report address in another domain must authorise this one.
      records.push({
        key: `dmarc-report-auth-${domain}`,
        zone: zoneOf(config, reportDomain),
        name: `${domain}._report._dmarc.${reportDomain}`,
        type: "TXT",
        content: txtContent("v=DMARC1"),
        ttl: DEFAULT_TTL,
        comment: `lets ${reportDomain} receive DMARC reports about ${domain}`,
      });
    }
  }
  return records;
}

/** Placeholder values for computing the shape of the record set before resources exist. */
export const PLACEHOLDER_VALUES: RecordValues = { ipv4: "192.0.2.1", dkimPublicKey: "A".repeat(392) };

function absolute(name: string): string {
  return `${name}.`;
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
    else rdata = r.content;
    lines.push(`; ${r.comment}`, `${owner} ${r.ttl} IN ${r.type} ${rdata}`);
  }
  return lines.join("\n") + "\n";
}
