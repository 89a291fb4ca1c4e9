import type { RecordedResource, Run } from "../support/harness";

/** Type tokens used throughout the Pulumi tests. */
export const T = {
  stack: "pulumi:pulumi:Stack",
  mailStack: "mailstack:index:MailStack",
  instance: "aws:ec2/instance:Instance",
  volume: "aws:ebs/volume:Volume",
  attachment: "aws:ec2/volumeAttachment:VolumeAttachment",
  eip: "aws:ec2/eip:Eip",
  eipAssociation: "aws:ec2/eipAssociation:EipAssociation",
  eipDomainName: "aws:ec2/eipDomainName:EipDomainName",
  securityGroup: "aws:ec2/securityGroup:SecurityGroup",
  ingress: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  egress: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
  role: "aws:iam/role:Role",
  rolePolicy: "aws:iam/rolePolicy:RolePolicy",
  instanceProfile: "aws:iam/instanceProfile:InstanceProfile",
  parameter: "aws:ssm/parameter:Parameter",
  privateKey: "tls:index/privateKey:PrivateKey",
  dnsRecord: "cloudflare:index/dnsRecord:DnsRecord",
  bucket: "aws:s3/bucket:Bucket",
  getAmi: "aws:ec2/getAmi:getAmi",
  getZone: "cloudflare:index/getZone:getZone",
  getSubnet: "aws:ec2/getSubnet:getSubnet",
} as const;

/** The only resource of a type (fails loudly if there are none or several). */
export function one(run: Run, type: string): RecordedResource {
  const found = run.ofType(type);
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  return found[0];
}

/** True when `path` is a recorded secret path or lies below one. */
export function underSecret(path: string, secretPaths: string[]): boolean {
  return secretPaths.some((s) => s === "(value)" || path === s || path.startsWith(`${s}.`) || path.startsWith(`${s}[`));
}

/** Every string leaf of a value (object keys included), with its path. */
export function stringLeaves(value: unknown, path = ""): { path: string; value: string }[] {
  if (typeof value === "string") return [{ path, value }];
  if (Array.isArray(value)) return value.flatMap((v, i) => stringLeaves(v, `${path}[${i}]`));
  if (typeof value === "object" && value !== null) {
    return Object.entries(value).flatMap(([k, v]) => {
      const child = path ? `${path}.${k}` : k;
      return [{ path: child, value: k }, ...stringLeaves(v, child)];
    });
  }
  return [];
}

/** The string inputs of a resource that were NOT Pulumi secrets. */
export function plainInputStrings(resource: RecordedResource): { path: string; value: string }[] {
  return stringLeaves(resource.inputs).filter((leaf) => !underSecret(leaf.path, resource.secretPaths));
}

export interface Statement {
  Sid?: string;
  Effect: "Allow" | "Deny";
  Principal?: unknown;
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export const list = <V>(v: V | V[] | undefined): V[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** Statements of an IAM policy document given as JSON. */
export function statements(policyJson: string): Statement[] {
  const doc = JSON.parse(policyJson) as { Statement: Statement | Statement[] };
  return list(doc.Statement);
}

/** Whether an IAM action or resource pattern (with * and ? wildcards) matches a value. */
export function iamMatches(pattern: string, value: string, caseInsensitive = true): boolean {
  const source = pattern
    .split("")
    .map((c) => (c === "*" ? ".*" : c === "?" ? "." : c.replace(/[.+^${}()|[\]\\]/g, "\\$&")))
    .join("");
  return new RegExp(`^${source}$`, caseInsensitive ? "i" : "").test(value);
}

/** Splits a Cloudflare TXT content into its quoted character-strings (unescaped), or throws. */
export function txtStrings(content: string): string[] {
  const strings = content.match(/"((?:[^"\\]|\\.)*)"/g);
  if (!strings || strings.join(" ") !== content) throw new Error(`TXT content is not a list of quoted strings: ${content}`);
  return strings.map((s) => s.slice(1, -1).replace(/\\(.)/g, "$1"));
}

/**
 * Base64 lines of a PEM body (what would leak if the key leaked), leaving out a short last
 * line, which could occur by chance in unrelated base64.
 */
export function pemBodyLines(pem: string): string[] {
  return pem
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length >= 32 && !l.startsWith("-----"));
}

/**
 * Whether a set of identity-policy statements allows a request: some Allow matches and no
 * Deny does. Conditions understood: StringEquals and StringLike; a key the request does not
 * carry fails the condition, as in IAM. Enough for the policies mailstack writes.
 */
export function allows(all: Statement[], action: string, resource: string, context: Record<string, string> = {}): boolean {
  const matches = (s: Statement) =>
    list(s.Action).some((a) => iamMatches(a, action)) &&
    list(s.Resource).some((r) => iamMatches(r, resource, false)) &&
    Object.entries(s.Condition ?? {}).every(([operator, tests]) =>
      Object.entries(tests).every(([key, expected]) => {
        const actual = context[key];
        if (actual === undefined) return false;
        if (operator === "StringEquals") return list(expected).includes(actual);
        if (operator === "StringLike") return list(expected).some((pattern) => iamMatches(pattern, actual, false));
        throw new Error(`condition operator ${operator} is not understood by this test helper`);
      }),
    );
  return all.some((s) => s.Effect === "Allow" && matches(s)) && !all.some((s) => s.Effect === "Deny" && matches(s));
}
