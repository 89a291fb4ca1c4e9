import { checkDomain, type DnsRecord, dnsRecords, dnsZones, type MailConfig, placeholderValues } from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";

/** Values of the record set that exist only once other resources do. */
export interface DnsValues {
  /** The mail host's public IPv4 address (the Elastic IP). */
  readonly ipv4: pulumi.Input<string>;
  /** Base64 public key of every published DKIM selector in `config`, by selector. */
  readonly dkimPublicKeys: Readonly<Record<string, pulumi.Input<string>>>;
  /** Hex SHA-256 of the TLS key's public half; required when `config.dnssec` is on (TLSA). */
  readonly tlsKeySha256?: pulumi.Input<string>;
}

/** The core's record set with real values. */
export function recordSet(config: MailConfig, values: DnsValues): pulumi.Output<DnsRecord[]> {
  return pulumi
    .all([values.ipv4, pulumi.all(values.dkimPublicKeys), values.tlsKeySha256])
    .apply(([ipv4, dkimPublicKeys, tlsKeySha256]) => dnsRecords(config, { ipv4, dkimPublicKeys, tlsKeySha256 }));
}

/**
 * The record set with placeholder values: which records exist, under which keys, names and
 * zones. Resources are declared from it, so they exist in a preview before any value does.
 */
export function recordShapes(config: MailConfig): DnsRecord[] {
  return dnsRecords(config, placeholderValues(config));
}

/**
 * The zone id of every zone the records go into: the given one, else a lookup by name. Given
 * ids are keyed by domain as the user wrote it (IDN or not), so they are normalised first.
 */
export function zoneIdsByDomain(
  config: MailConfig,
  given: Readonly<Record<string, pulumi.Input<string>>> | undefined,
  lookup: (zone: string) => pulumi.Output<string>,
): Record<string, pulumi.Output<string>> {
  const ids = new Map(
    Object.entries(given ?? {}).map(([domain, id]) => {
      const checked = checkDomain(domain);
      return [checked.ok ? checked.value : domain, id] as const;
    }),
  );
  return Object.fromEntries(
    dnsZones(config).map((zone) => {
      const id = ids.get(zone);
      return [zone, id !== undefined ? pulumi.output(id) : lookup(zone)];
    }),
  );
}
