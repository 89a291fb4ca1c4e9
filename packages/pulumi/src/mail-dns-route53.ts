import type { DnsRecord, MailConfig } from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";
import { getZoneOutput } from "@pulumi/aws/route53/getZone";
import { Record as RecordSet } from "@pulumi/aws/route53/record";
import { type DnsValues, recordSet, recordShapes, zoneIdsByDomain } from "./dns-records";

/** Arguments of {@link MailDnsRoute53}: the configuration, the values the records need, and optionally the zone ids. */
export interface MailDnsRoute53Args extends DnsValues {
  /** The validated configuration: decides which record sets and zones exist. */
  readonly config: MailConfig;
  /**
   * Route 53 hosted zone id by domain (mail domains and nonMailDomains). Default: each public
   * hosted zone is looked up by its name, which needs `route53:ListHostedZones`; give ids to
   * avoid that permission or to pick one of several zones of the same name.
   */
  readonly zoneIds?: Readonly<Record<string, pulumi.Input<string>>>;
}

/** Records that Route 53 keeps as one record set: the same name and type. */
interface RecordSetShape {
  zone: string;
  name: string;
  type: DnsRecord["type"];
  keys: string[];
  ttl: number;
}

/**
 * Publishes the core's record set in Amazon Route 53. Route 53 holds every value of a name and
 * type in one record set, so records sharing both (SPF and verification TXT values at an apex,
 * the CAA issuers of the host) become one `aws.route53.Record` with several values, named by
 * type and name so that adding or removing a value never renames it.
 */
export class MailDnsRoute53 extends pulumi.ComponentResource {
  /** Every record as published, with real values. */
  readonly records: pulumi.Output<DnsRecord[]>;
  /** The record set each record is published in, by record key (`host-a`, `mx-example.com`). */
  readonly resources: Record<string, RecordSet> = {};
  /** Hosted zone id of every zone the records go into. */
  readonly zoneIds: Record<string, pulumi.Output<string>>;

  constructor(name: string, args: MailDnsRoute53Args, opts?: pulumi.ComponentResourceOptions) {
    super("mailstack:aws:MailDnsRoute53", name, {}, opts);
    this.zoneIds = zoneIdsByDomain(args.config, args.zoneIds, (zone) => getZoneOutput({ name: zone, privateZone: false }, { parent: this }).zoneId);
    this.records = recordSet(args.config, args);
    for (const set of recordSets(recordShapes(args.config))) {
      const resource = new RecordSet(
        `${name}-${set.type.toLowerCase()}-${set.name}`,
        {
          zoneId: this.zoneIds[set.zone],
          name: set.name,
          type: set.type,
          ttl: set.ttl,
          records: this.records.apply((records) =>
            set.keys.map((key) => {
              const record = records.find((r) => r.key === key);
              if (!record) throw new Error(`record ${key} vanished once values were known`);
              return route53Value(record);
            }),
          ),
        },
        { parent: this },
      );
      for (const key of set.keys) this.resources[key] = resource;
    }
    this.registerOutputs({ records: this.records });
  }
}

/** Groups records by name and type, in the order of their first record. */
function recordSets(records: DnsRecord[]): RecordSetShape[] {
  const sets = new Map<string, RecordSetShape>();
  for (const r of records) {
    const id = `${r.type} ${r.name}`;
    const set = sets.get(id) ?? { zone: r.zone, name: r.name, type: r.type, keys: [], ttl: r.ttl };
    set.keys.push(r.key);
    // One TTL per record set: the shortest, so no value is cached longer than it asks for.
    set.ttl = Math.min(set.ttl, r.ttl);
    sets.set(id, set);
  }
  return [...sets.values()];
}

/** One value of a record set, as the provider's `records` takes it. */
export function route53Value(record: DnsRecord): string {
  switch (record.type) {
    case "MX":
      return `${record.priority} ${record.content}`;
    case "TXT":
      // The provider wraps each value in quotes and strips the outer pair when it reads the
      // record back, so `"a" "b"` goes without them: Route 53 stores `"a" "b"`, no false diff.
      return record.content.slice(1, -1);
    default:
      return record.content;
  }
}
