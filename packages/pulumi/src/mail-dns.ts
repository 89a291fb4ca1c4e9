import { checkDomain, type DnsRecord, dnsRecords, dnsZones, type MailConfig, placeholderValues } from "@mailstack/core";
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";

export interface MailDnsArgs {
  /** The validated configuration: decides which records exist. */
  config: MailConfig;
  /** The mail host's public IPv4 address (the Elastic IP). */
  ipv4: pulumi.Input<string>;
  /** Base64 public key of every published DKIM selector in `config`. */
  dkimPublicKeys: Record<string, pulumi.Input<string>>;
  /** Hex SHA-256 of the TLS key's public half; required when `config.dnssec` is on (TLSA). */
  tlsKeySha256?: pulumi.Input<string>;
  /**
   * Cloudflare zone id by mail domain. Default: each zone is looked up by the domain's name,
   * which needs the API token to list zones; give ids to avoid that permission.
   */
  zoneIds?: Record<string, pulumi.Input<string>>;
}

// Cloudflare's Free plan stores record comments of at most 100 characters.
const COMMENT_LIMIT = 100;

/**
 * Publishes the core's record set in Cloudflare: one DnsRecord per record, never proxied
 * (mail protocols cannot pass Cloudflare's HTTP proxy). Which records exist depends only on
 * the configuration; addresses and keys fill in once the resources behind them exist.
 */
export class MailDns extends pulumi.ComponentResource {
  /** Every record as published, with real values. */
  readonly records: pulumi.Output<DnsRecord[]>;
  /** Provider resources by record key (e.g. `host-a`, `mx-example.com`). */
  readonly resources: Record<string, cloudflare.DnsRecord> = {};
  /** Zone id of every mail domain. */
  readonly zoneIds: Record<string, pulumi.Output<string>> = {};

  constructor(name: string, args: MailDnsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mailstack:cloudflare:MailDns", name, {}, opts);
    const given = new Map(
      Object.entries(args.zoneIds ?? {}).map(([domain, id]) => {
        const checked = checkDomain(domain);
        return [checked.ok ? checked.value : domain, id] as const;
      }),
    );
    for (const domain of dnsZones(args.config)) {
      const id = given.get(domain);
      this.zoneIds[domain] =
        id !== undefined ? pulumi.output(id) : cloudflare.getZoneOutput({ filter: { name: domain } }, { parent: this }).zoneId;
    }
    this.records = pulumi
      .all([args.ipv4, pulumi.all(args.dkimPublicKeys), args.tlsKeySha256])
      .apply(([ipv4, dkimPublicKeys, tlsKeySha256]) => dnsRecords(args.config, { ipv4, dkimPublicKeys, tlsKeySha256 }));
    for (const shape of dnsRecords(args.config, placeholderValues(args.config))) {
      const content = this.records.apply((records) => {
        const record = records.find((r) => r.key === shape.key);
        if (!record) throw new Error(`record ${shape.key} vanished once values were known`);
        return record.content;
      });
      this.resources[shape.key] = new cloudflare.DnsRecord(
        `${name}-${shape.key}`,
        {
          zoneId: this.zoneIds[shape.zone],
          name: shape.name,
          type: shape.type,
          content,
          ttl: shape.ttl,
          priority: shape.priority,
          proxied: false,
          comment: `mailstack: ${shape.comment}`.slice(0, COMMENT_LIMIT),
        },
        { parent: this },
      );
    }
    this.registerOutputs({ records: this.records });
  }
}
