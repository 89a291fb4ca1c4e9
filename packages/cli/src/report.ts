import type { PlanRecord, RecordedResource } from "./mock-runtime";
import { maskedInputs } from "./plan";

type Inputs = Record<string, any>;

const short = (type: string) => {
  // aws:ec2/instance:Instance -> aws.ec2.Instance; pulumi:pulumi:Stack stays as it is.
  const [pkg, mod, name] = type.split(":");
  const module = mod.split("/")[0];
  return module === "index" || pkg === module ? `${pkg}.${name}` : `${pkg}.${module}.${name}`;
};

const clip = (text: string, width = 70) => (text.length > width ? `${text.slice(0, width - 1)}…` : text);

/** `arn:aws:ssm:us-east-1:123456789012:parameter/x` -> `ssm:parameter/x`: the part that differs. */
function arnResource(arn: unknown): string {
  const parts = String(arn).split(":");
  return parts.length >= 6 && parts[0] === "arn" ? `${parts[2]}:${parts.slice(5).join(":")}` : String(arn);
}

function policyActions(policy: unknown): string {
  try {
    const doc = JSON.parse(String(policy));
    const statements: { Action: string | string[]; Resource?: string | string[]; Effect: string }[] = [doc.Statement ?? []].flat();
    return statements
      .map((s) => `${s.Effect === "Deny" ? "deny " : ""}${[s.Action].flat().length} actions on ${[s.Resource].flat().map(arnResource).join(", ")}`)
      .join("; ");
  } catch {
    return "";
  }
}

/** A Cloudflare record's `data` in zone-file order, as `content` would show it. */
function dataText(type: string, data: Inputs): string {
  if (type === "SRV") return `${data.priority} ${data.weight} ${data.port} ${data.target}`;
  if (type === "CAA") return `${data.flags} ${data.tag} "${data.value}"`;
  if (type === "TLSA") return `${data.usage} ${data.selector} ${data.matchingType} ${data.certificate}`;
  return JSON.stringify(data);
}

/** A lifecycle rule in words: what it moves, expires or aborts, and where. */
function lifecycleRule(r: any): string {
  const parts: string[] = [];
  if (r.noncurrentVersionExpiration !== undefined) {
    const moves = (r.noncurrentVersionTransitions ?? []).map((t: any) => `${t.storageClass} after ${t.noncurrentDays}`);
    parts.push(`old versions ${moves.length ? `move to ${moves.join(", ")}, ` : ""}expire after ${r.noncurrentVersionExpiration.noncurrentDays} days`);
  }
  if (r.expiration?.days !== undefined) parts.push(`objects${r.filter?.prefix ? ` under ${r.filter.prefix}` : ""} expire after ${r.expiration.days} days`);
  if (r.abortIncompleteMultipartUpload !== undefined && r.noncurrentVersionExpiration === undefined) parts.push(`incomplete uploads aborted after ${r.abortIncompleteMultipartUpload.daysAfterInitiation} days`);
  return `${r.id}: ${parts.join(", ")}`;
}

/** ` in <region>` for a resource that names a region of its own (SES's, a replica's). */
const inRegion = (i: Inputs) => (i.region ? ` in ${i.region}` : "");

/** The inputs worth seeing for each resource type, in a line. */
const DETAILS: Record<string, (i: Inputs, r: RecordedResource) => string> = {
  "aws:ec2/instance:Instance": (i, r) =>
    `${i.instanceType} ${i.ami} IMDS tokens=${i.metadataOptions?.httpTokens} hops=${i.metadataOptions?.httpPutResponseHopLimit}; root ${i.rootBlockDevice?.volumeSize} GiB ${i.rootBlockDevice?.volumeType}${i.rootBlockDevice?.encrypted ? " encrypted" : " UNENCRYPTED"}; user data ${Buffer.from(String(i.userDataBase64 ?? ""), "base64").length} B gzip${r.ignoreChanges.length ? `; ignores ${r.ignoreChanges.join(",")}` : ""}`,
  "aws:ebs/volume:Volume": (i) => `${i.size} GiB ${i.type}${i.encrypted ? " encrypted" : " UNENCRYPTED"} in ${i.availabilityZone}${i.finalSnapshot ? ", snapshot on delete" : ""}`,
  "aws:ec2/volumeAttachment:VolumeAttachment": (i) => `${i.volumeId} -> ${i.instanceId} as ${i.deviceName}`,
  "aws:ec2/eip:Eip": (i) => `domain ${i.domain}`,
  "aws:ec2/eipAssociation:EipAssociation": (i) => `${i.allocationId} -> ${i.instanceId}`,
  "aws:ec2/eipDomainName:EipDomainName": (i) => `PTR -> ${i.domainName}`,
  "aws:ec2/securityGroup:SecurityGroup": (i) => `in ${i.vpcId}`,
  "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (i) => `allow in ${i.ipProtocol}/${i.fromPort} from ${i.cidrIpv4 ?? i.cidrIpv6} (${i.description})`,
  "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": (i) => `allow out ${i.ipProtocol}/${i.fromPort} to ${i.cidrIpv4 ?? i.cidrIpv6} (${i.description})`,
  "aws:iam/role:Role": (i) => `assumed by ${JSON.parse(i.assumeRolePolicy).Statement.map((s: any) => s.Principal.Service).join(", ")}`,
  "aws:iam/rolePolicy:RolePolicy": (i) => policyActions(i.policy),
  "aws:iam/instanceProfile:InstanceProfile": (i) => `role ${i.role}`,
  "aws:ssm/parameter:Parameter": (i) => `${i.name} ${i.type}${i.tier === undefined ? "" : ` ${i.tier}`}`,
  "aws:s3/bucketObjectv2:BucketObjectv2": (i) => `s3:${i.bucket}/${i.key} ${String(i.content ?? "").length} B ${i.serverSideEncryption ?? "unencrypted"}`,
  "aws:s3/bucket:Bucket": (i) => `forceDestroy=${i.forceDestroy}${i.region ? ` in ${i.region}` : ""}`,
  "aws:s3/bucketVersioning:BucketVersioning": (i) => `versioning ${i.versioningConfiguration?.status}`,
  "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (i) =>
    `default encryption ${i.rules?.[0]?.applyServerSideEncryptionByDefault?.sseAlgorithm} with ${arnResource(i.rules?.[0]?.applyServerSideEncryptionByDefault?.kmsMasterKeyId ?? "aws/s3")}`,
  "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": (i) =>
    ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"].every((k) => i[k]) ? "all public access blocked" : "SOME PUBLIC ACCESS ALLOWED",
  "aws:s3/bucketPolicy:BucketPolicy": (i) => policyActions(i.policy),
  "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": (i) => (i.rules ?? []).map(lifecycleRule).join("; "),
  "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration": (i) =>
    `Object Lock ${i.rule?.defaultRetention?.mode} ${i.rule?.defaultRetention?.days} days`,
  "aws:s3/bucketReplicationConfig:BucketReplicationConfig": (i) =>
    (i.rules ?? []).map((r: any) => `replicate to ${arnResource(r.destination?.bucket)} as ${r.destination?.storageClass}`).join("; "),
  "aws:iam/rolePolicyAttachment:RolePolicyAttachment": (i) => `${arnResource(i.policyArn)}`,
  "aws:dlm/lifecyclePolicy:LifecyclePolicy": (i) =>
    (i.policyDetails?.schedules ?? [])
      .map((s: any) => `snapshot ${JSON.stringify(i.policyDetails.targetTags)} daily at ${s.createRule?.times} UTC, keep ${s.retainRule?.count}`)
      .join("; "),
  "random:index/randomPassword:RandomPassword": (i) => `${i.length} characters`,
  "aws:sesv2/emailIdentity:EmailIdentity": (i) =>
    // The signing attributes hold the private key: a secret as a whole, the selector with it.
    `${i.emailIdentity}${i.dkimSigningAttributes !== undefined ? ", BYODKIM (key secret)" : ""}, configuration set ${i.configurationSetName}${inRegion(i)}`,
  "aws:sesv2/emailIdentityMailFromAttributes:EmailIdentityMailFromAttributes": (i) => `MAIL FROM ${i.mailFromDomain} for ${i.emailIdentity}, on MX failure ${i.behaviorOnMxFailure}${inRegion(i)}`,
  "aws:sesv2/configurationSet:ConfigurationSet": (i) =>
    `${i.configurationSetName}: suppresses ${(i.suppressionOptions?.suppressedReasons ?? []).join(", ") || "nothing"}, reputation metrics ${i.reputationOptions?.reputationMetricsEnabled ? "on" : "off"}${inRegion(i)}`,
  "aws:sesv2/configurationSetEventDestination:ConfigurationSetEventDestination": (i) =>
    `${(i.eventDestination?.matchingEventTypes ?? []).join(", ")} -> ${arnResource(i.eventDestination?.snsDestination?.topicArn)}${inRegion(i)}`,
  "aws:sns/topicPolicy:TopicPolicy": (i) => policyActions(i.policy),
  "aws:iam/user:User": (i) => `path ${i.path ?? "/"}`,
  "aws:iam/userPolicy:UserPolicy": (i) => policyActions(i.policy),
  "aws:iam/accessKey:AccessKey": (i) => `of user ${i.user}`,
  "aws:ses/receiptRuleSet:ReceiptRuleSet": (i) => `${i.ruleSetName}${inRegion(i)}`,
  "aws:ses/receiptRule:ReceiptRule": (i) =>
    `${(i.recipients ?? []).join(", ")} -> ${(i.s3Actions ?? []).map((a: any) => `s3:${a.bucketName}/${a.objectKeyPrefix ?? ""}`).join(", ")}, TLS ${i.tlsPolicy}${i.after ? `, after ${i.after}` : ""}`,
  "aws:ses/activeReceiptRuleSet:ActiveReceiptRuleSet": (i) => `${i.ruleSetName} ACTIVE${inRegion(i)}, replacing any other active rule set there`,
  "aws:s3/bucketOwnershipControls:BucketOwnershipControls": (i) => `${i.rule?.objectOwnership}`,
  "cloudflare:index/dnsRecord:DnsRecord": (i) =>
    `${i.type.padEnd(5)} ${i.name} ${i.data !== undefined ? clip(dataText(i.type, i.data), 60) : `${i.priority !== undefined ? `${i.priority} ` : ""}${clip(String(i.content), 60)}`}${i.proxied ? " PROXIED" : ""}`,
  "cloudflare:index/zoneDnssec:ZoneDnssec": (i) => `DNSSEC ${i.status} on zone ${i.zoneId}`,
  "aws:route53/record:Record": (i) => `${i.type.padEnd(5)} ${i.name} ttl ${i.ttl}: ${clip((i.records ?? []).join(" | "), 60)}`,
  "tls:index/privateKey:PrivateKey": (i) => `${i.algorithm} ${i.rsaBits ?? ""}`.trim(),
  // Every dynamic resource has this type; its `kind` input says which one it is.
  "pulumi-nodejs:dynamic:Resource": (i) => String(i.kind ?? ""),
};

function flags(r: RecordedResource): string {
  return [r.protect ? "protected" : "", r.deleteBeforeReplace ? "replaced delete-first" : ""]
    .filter(Boolean)
    .join(" ");
}

/** Resources in tree order: each parent followed by its children, by name. */
function tree(resources: RecordedResource[]): { resource: RecordedResource; depth: number }[] {
  const children = new Map<string, RecordedResource[]>();
  for (const r of resources) children.set(r.parent, [...(children.get(r.parent) ?? []), r]);
  const out: { resource: RecordedResource; depth: number }[] = [];
  const walk = (parent: string, depth: number) => {
    for (const r of (children.get(parent) ?? []).sort((a, b) => a.name.localeCompare(b.name))) {
      out.push({ resource: r, depth });
      walk(r.urn, depth + 1);
    }
  };
  walk("", 0);
  return out;
}

/** A readable table of every resource: type, name (indented under its parent), key inputs. */
export function formatTable(record: PlanRecord): string {
  const rows = tree(record.resources).map(({ resource, depth }) => {
    const detail = DETAILS[resource.type];
    let text = "";
    if (detail) {
      try {
        text = detail(maskedInputs(resource), resource);
      } catch {
        text = "";
      }
    }
    const extra = flags(resource);
    return [short(resource.type), `${"  ".repeat(depth)}${resource.name}`, [text, extra ? `[${extra}]` : ""].filter(Boolean).join(" ")];
  });
  const widths = [0, 1].map((c) => Math.max(...rows.map((r) => r[c].length), c === 0 ? 4 : 4));
  const line = (r: string[]) => `${r[0].padEnd(widths[0])}  ${r[1].padEnd(widths[1])}  ${r[2]}`.trimEnd();
  return [line(["TYPE", "NAME", "DETAILS"]), ...rows.map(line)].join("\n");
}
