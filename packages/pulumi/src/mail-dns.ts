import { type DnsRecord, dnsZones, type MailConfig } from "@mailstack/core";
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import { type DnsValues, recordSet, recordShapes, zoneIdsByDomain } from "./dns-records";

export interface MailDnsArgs extends DnsValues {
  /** The validated configuration: decides which records and zones exist. */
  config: MailConfig;
  /**
   * Cloudflare zone id by domain (mail domains and nonMailDomains). Default: each zone is
   * looked up by its name, which needs the API token's Zone Read permission; give ids to
   * avoid that permission.
   */
  zoneIds?: Record<string, pulumi.Input<string>>;
}

/** The DS record of a zone signed by Cloudflare, to be added at the domain's registrar. */
export interface DsRecord {
  zone: string;
  /** The whole record in zone-file form, e.g. `example.com. IN DS 2371 13 2 1F98…`. */
  ds: string;
  keyTag: number;
  algorithm: string;
  digestType: string;
  digest: string;
}

// Cloudflare's Free plan stores record comments of at most 100 characters.
const COMMENT_LIMIT = 100;

/**
 * Publishes the core's record set in Cloudflare: one DnsRecord per record, never proxied
 * (mail protocols cannot pass Cloudflare's HTTP proxy, and a proxied CNAME would hide the
 * mail host's address). With `config.dnssec`, also signs every zone and reports its DS record.
 * Which records exist depends only on the configuration; addresses and keys fill in once the
 * resources behind them exist.
 */
export class MailDns extends pulumi.ComponentResource {
  /** Every record as published, with real values. */
  readonly records: pulumi.Output<DnsRecord[]>;
  /** Provider resources by record key (e.g. `host-a`, `mx-example.com`). */
  readonly resources: Record<string, cloudflare.DnsRecord> = {};
  /** Zone id of every zone the records go into. */
  readonly zoneIds: Record<string, pulumi.Output<string>>;
  /** DNSSEC of each zone by zone name; empty unless `config.dnssec`. */
  readonly dnssec: Record<string, cloudflare.ZoneDnssec> = {};
  /** The DS record of each signed zone; empty unless `config.dnssec`. */
  readonly dsRecords: pulumi.Output<DsRecord[]>;

  constructor(name: string, args: MailDnsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mailstack:cloudflare:MailDns", name, {}, opts);
    this.zoneIds = zoneIdsByDomain(args.config, args.zoneIds, (domain) => cloudflare.getZoneOutput({ filter: { name: domain } }, { parent: this }).zoneId);
    this.records = recordSet(args.config, args);
    for (const shape of recordShapes(args.config)) {
      const record = this.records.apply((records) => {
        const found = records.find((r) => r.key === shape.key);
        if (!found) throw new Error(`record ${shape.key} vanished once values were known`);
        return found;
      });
      this.resources[shape.key] = new cloudflare.DnsRecord(
        `${name}-${shape.key}`,
        {
          zoneId: this.zoneIds[shape.zone],
          name: shape.name,
          type: shape.type,
          ...recordFields(shape, record),
          ttl: shape.ttl,
          proxied: false,
          comment: `mailstack: ${shape.comment}`.slice(0, COMMENT_LIMIT),
        },
        { parent: this },
      );
    }
    if (args.config.dnssec) {
      for (const zone of dnsZones(args.config)) {
        this.dnssec[zone] = new cloudflare.ZoneDnssec(`${name}-dnssec-${zone}`, { zoneId: this.zoneIds[zone], status: "active" }, { parent: this });
      }
    }
    this.dsRecords = pulumi.all(
      Object.entries(this.dnssec).map(([zone, d]) =>
        pulumi.all([d.keyTag, d.algorithm, d.digestType, d.digest]).apply(([keyTag, algorithm, digestType, digest]) => ({
          zone,
          ds: `${zone}. IN DS ${keyTag} ${algorithm} ${digestType} ${digest}`,
          keyTag,
          algorithm,
          digestType,
          digest,
        })),
      ),
    );
    this.registerOutputs({ records: this.records, dsRecords: this.dsRecords });
  }
}

/**
 * The value fields of a record as Cloudflare takes them. SRV, CAA and TLSA go as `data` only
 * (its fields are named as in the core): Cloudflare derives `content` from it, and sending both
 * would show a diff on every preview. SRV repeats its priority at the top level, where
 * Cloudflare's API reports it too.
 */
function recordFields(shape: DnsRecord, record: pulumi.Output<DnsRecord>): Pick<cloudflare.DnsRecordArgs, "content" | "priority" | "data"> {
  if (shape.data === undefined) return { content: record.content, priority: shape.priority };
  return {
    priority: shape.data.kind === "SRV" ? shape.data.priority : undefined,
    data: record.apply((r) => {
      if (r.data === undefined) throw new Error(`record ${r.key} lost its data once values were known`);
      const { kind: _kind, ...fields } = r.data;
      return fields;
    }),
  };
}
