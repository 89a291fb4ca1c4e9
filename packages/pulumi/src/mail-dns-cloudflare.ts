import { type DnsRecord, dnsZones, type MailConfig } from "@mailstack/core";
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import { type DnsValues, recordSet, recordShapes, zoneIdsByDomain } from "./dns-records";

/** Arguments of {@link MailDnsCloudflare}: the configuration, the values the records need, and optionally the zone ids. */
export interface MailDnsCloudflareArgs extends DnsValues {
  /** The validated configuration: decides which records and zones exist. */
  readonly config: MailConfig;
  /**
   * Cloudflare zone id by domain (mail domains and nonMailDomains). Default: each zone is
   * looked up by its name, which needs the API token's Zone Read permission; give ids to
   * avoid that permission.
   */
  readonly zoneIds?: Readonly<Record<string, pulumi.Input<string>>>;
}

/** The DS record of a zone signed by Cloudflare, to be added at the domain's registrar. */
export interface DsRecord {
  /** The zone's name, e.g. `example.com`. */
  zone: string;
  /** The whole record in zone-file form, e.g. `example.com. IN DS 2371 13 2 1F98…`. */
  ds: string;
  /** The key tag of the zone's key-signing key, e.g. `2371`. */
  keyTag: number;
  /** The DNSSEC algorithm number as Cloudflare reports it, e.g. `13` (ECDSA P-256 with SHA-256). */
  algorithm: string;
  /** The digest type number, e.g. `2` (SHA-256). */
  digestType: string;
  /** The digest in hex. */
  digest: string;
}

/** The type token `MailDnsCloudflare` had when it was called `MailDns`. */
const FORMER_TYPE = "mailstack:cloudflare:MailDns";

// Cloudflare's Free plan stores record comments of at most 100 characters.
const COMMENT_LIMIT = 100;

/**
 * Publishes the core's record set in Cloudflare: one DnsRecord per record, never proxied
 * (mail protocols cannot pass Cloudflare's HTTP proxy, and a proxied CNAME would hide the
 * mail host's address). With `config.dnssec`, also signs every zone and reports its DS record.
 * Which records exist depends only on the configuration; addresses and keys fill in once the
 * resources behind them exist.
 */
export class MailDnsCloudflare extends pulumi.ComponentResource {
  /** Every record as published, with real values (addresses and keys filled in). */
  readonly records: pulumi.Output<DnsRecord[]>;
  /** The `cloudflare.DnsRecord` of each record, by record key (e.g. `host-a`, `mx-example.com`). */
  readonly resources: Record<string, cloudflare.DnsRecord> = {};
  /** Cloudflare zone id of every zone the records go into, by zone name: given in `zoneIds` or looked up. */
  readonly zoneIds: Record<string, pulumi.Output<string>>;
  /** The `cloudflare.ZoneDnssec` of each zone, by zone name; empty unless `config.dnssec`. */
  readonly dnssec: Record<string, cloudflare.ZoneDnssec> = {};
  /** The DS record of each signed zone, for the registrar; an empty list unless `config.dnssec`. */
  readonly dsRecords: pulumi.Output<DsRecord[]>;

  constructor(name: string, args: MailDnsCloudflareArgs, opts?: pulumi.ComponentResourceOptions) {
    // Stacks made while the component was called MailDns keep their records: without the
    // alias the new type token would give every record a new URN, and Pulumi would replace
    // them (a delete after the create, which takes the record away).
    super("mailstack:cloudflare:MailDnsCloudflare", name, {}, { ...opts, aliases: [...(opts?.aliases ?? []), { type: FORMER_TYPE }] });
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

/** @deprecated Renamed to {@link MailDnsCloudflare}, named like {@link MailDnsRoute53}; this alias will be removed. */
export const MailDns = MailDnsCloudflare;
/** @deprecated Renamed to {@link MailDnsCloudflare}, named like {@link MailDnsRoute53}; this alias will be removed. */
export type MailDns = MailDnsCloudflare;
/** @deprecated Renamed to {@link MailDnsCloudflareArgs}; this alias will be removed. */
export type MailDnsArgs = MailDnsCloudflareArgs;

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
