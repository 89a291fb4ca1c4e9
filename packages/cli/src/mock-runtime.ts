import { createHash, generateKeyPair, type KeyObject, randomInt } from "node:crypto";
import { promisify } from "node:util";
import * as pulumi from "@pulumi/pulumi";

/**
 * Pulumi's mock runtime, extended to record what the engine would see: every resource with
 * its inputs (secrets still marked) and the options the public mocks API does not expose
 * (parent, dependsOn, protect, deleteBeforeReplace, ignoreChanges). It relies on the SDK's
 * internal MockMonitor, which is why @pulumi/pulumi is pinned to an exact version.
 */

/** Pulumi's wire marker for a secret value inside resource inputs. */
const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export interface RecordedResource {
  urn: string;
  type: string;
  name: string;
  custom: boolean;
  /** Inputs with secrets unwrapped. */
  inputs: Record<string, any>;
  /** Paths (a.b[0].c) of inputs that were Pulumi secrets. */
  secretPaths: string[];
  parent: string;
  dependsOn: string[];
  protect: boolean;
  deleteBeforeReplace: boolean;
  retainOnDelete: boolean;
  ignoreChanges: string[];
  additionalSecretOutputs: string[];
  id?: string;
  state: Record<string, any>;
}

export interface RecordedInvoke {
  token: string;
  inputs: Record<string, any>;
}

export interface PlanRecord {
  resources: RecordedResource[];
  invokes: RecordedInvoke[];
}

function isSecretValue(value: unknown): value is { value: unknown } {
  return typeof value === "object" && value !== null && (value as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

/** Unwraps secret markers, collecting the paths where they were. */
function unwrapSecrets(value: unknown, path = "", found: string[] = []): unknown {
  if (isSecretValue(value)) {
    found.push(path || "(value)");
    return unwrapSecrets(value.value, path, found);
  }
  if (Array.isArray(value)) return value.map((v, i) => unwrapSecrets(v, `${path}[${i}]`, found));
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, unwrapSecrets(v, path ? `${path}.${k}` : k, found)]),
    );
  }
  return value;
}

/** Zone names by the ids the zone lookups answered, so a DS record can name its zone. */
const zoneNames = new Map<string, string>();

const hex = (seed: string, length: number) => createHash("sha256").update(seed).digest("hex").slice(0, length);

const generate = promisify(generateKeyPair) as (
  type: "rsa" | "ec",
  options: { modulusLength: number } | { namedCurve: string },
) => Promise<{ privateKey: KeyObject; publicKey: KeyObject }>;

/** Realistic state for what the cloud would compute, so derived inputs are never silently dropped. */
async function computed(type: string, name: string, inputs: Record<string, any>): Promise<{ id: string; state: Record<string, any> }> {
  const h = (n: number) => hex(`${type}/${name}`, n);
  switch (type) {
    case "tls:index/privateKey:PrivateKey": {
      // A real key, generated on libuv's thread pool while the program goes on registering.
      const { privateKey, publicKey } =
        inputs.algorithm === "ECDSA"
          ? await generate("ec", { namedCurve: { P224: "P-224", P256: "P-256", P384: "P-384", P521: "P-521" }[String(inputs.ecdsaCurve ?? "P224")] ?? "P-224" })
          : await generate("rsa", { modulusLength: Number(inputs.rsaBits ?? 2048) });
      return {
        id: h(40),
        state: {
          ...inputs,
          privateKeyPem: privateKey.export({ type: inputs.algorithm === "ECDSA" ? "sec1" : "pkcs1", format: "pem" }),
          privateKeyPemPkcs8: privateKey.export({ type: "pkcs8", format: "pem" }),
          publicKeyPem: publicKey.export({ type: "spki", format: "pem" }),
          publicKeyFingerprintSha256: `SHA256:${createHash("sha256").update(publicKey.export({ type: "spki", format: "der" })).digest("base64")}`,
        },
      };
    }
    case "aws:ec2/eip:Eip": {
      const octet = (parseInt(h(4), 16) % 250) + 2;
      return { id: `eipalloc-${h(17)}`, state: { ...inputs, allocationId: `eipalloc-${h(17)}`, publicIp: `198.51.100.${octet}` } };
    }
    case "aws:ec2/instance:Instance":
      return { id: `i-${h(17)}`, state: { ...inputs, arn: `arn:aws:ec2:us-east-1:123456789012:instance/i-${h(17)}`, privateIp: "172.31.0.10" } };
    case "aws:ebs/volume:Volume":
      return { id: `vol-${h(17)}`, state: { ...inputs, arn: `arn:aws:ec2:us-east-1:123456789012:volume/vol-${h(17)}` } };
    case "aws:ec2/securityGroup:SecurityGroup":
      return { id: `sg-${h(17)}`, state: { ...inputs, arn: `arn:aws:ec2:us-east-1:123456789012:security-group/sg-${h(17)}` } };
    case "aws:iam/role:Role":
    case "aws:iam/instanceProfile:InstanceProfile": {
      const resourceName = inputs.name ?? `${name}-${h(7)}`;
      const kind = type.includes("role") ? "role" : "instance-profile";
      return { id: resourceName, state: { ...inputs, name: resourceName, arn: `arn:aws:iam::123456789012:${kind}/${resourceName}` } };
    }
    case "aws:s3/bucket:Bucket": {
      const bucket = inputs.bucket ?? `${name}-${h(7)}`;
      return { id: bucket, state: { ...inputs, bucket, arn: `arn:aws:s3:::${bucket}`, region: inputs.region ?? "us-east-1" } };
    }
    case "random:index/randomPassword:RandomPassword": {
      // Random like the provider's, so that a test can look for this value where it must not be.
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
      const result = Array.from({ length: Number(inputs.length ?? 16) }, () => alphabet[randomInt(alphabet.length)]).join("");
      return { id: "none", state: { ...inputs, result } };
    }
    case "aws:route53/record:Record": {
      const fqdn = String(inputs.name);
      return { id: `${inputs.zoneId}_${fqdn}_${inputs.type}`, state: { ...inputs, fqdn } };
    }
    case "cloudflare:index/zoneDnssec:ZoneDnssec": {
      // What Cloudflare reports for a zone it signs with ECDSA P-256 (algorithm 13) and SHA-256 digests.
      const zone = String(inputs.zoneId);
      const keyTag = parseInt(hex(`keytag/${zone}`, 4), 16);
      const digest = hex(`digest/${zone}`, 64).toUpperCase();
      return {
        id: zone,
        state: {
          ...inputs,
          algorithm: "13",
          digestType: "2",
          digestAlgorithm: "SHA256",
          digest,
          keyTag,
          keyType: "ECDSAP256SHA256",
          flags: 257,
          publicKey: Buffer.from(hex(`key/${zone}`, 64), "hex").toString("base64"),
          ds: `${zoneNames.get(zone) ?? zone}. 3600 IN DS ${keyTag} 13 2 ${digest}`,
          status: inputs.status ?? "active",
        },
      };
    }
    case "aws:ssm/parameter:Parameter":
      return { id: inputs.name, state: { ...inputs, arn: `arn:aws:ssm:us-east-1:123456789012:parameter${inputs.name}`, version: 1 } };
    default: {
      // Every AWS resource has an ARN; without one, inputs derived from it would vanish.
      const [pkg, module] = type.split(/[:/]/);
      const arn = pkg === "aws" ? { arn: `arn:aws:${module}:us-east-1:123456789012:${name}-${h(8)}` } : {};
      return { id: `${name}-${h(8)}`, state: { ...arn, ...inputs } };
    }
  }
}

function filterValue(inputs: Record<string, any>, filter: string): string | undefined {
  const found = (inputs.filters ?? []).find((f: { name: string }) => f.name === filter);
  return found?.values?.[0];
}

/** Answers for the data sources mailstack reads; anything else fails loudly instead of hanging. */
function invoke(token: string, inputs: Record<string, any>): Record<string, any> {
  switch (token) {
    case "aws:index/getRegion:getRegion":
      return { id: "us-east-1", name: "us-east-1", region: "us-east-1", endpoint: "ec2.us-east-1.amazonaws.com", description: "US East (N. Virginia)" };
    case "aws:index/getCallerIdentity:getCallerIdentity":
      return { id: "123456789012", accountId: "123456789012", arn: "arn:aws:iam::123456789012:user/plan", userId: "AIDAPLAN" };
    case "aws:index/getPartition:getPartition":
      return { id: "aws", partition: "aws", dnsSuffix: "amazonaws.com", reverseDnsPrefix: "com.amazonaws" };
    case "aws:index/getAvailabilityZones:getAvailabilityZones":
      return { id: "us-east-1", names: ["us-east-1a", "us-east-1b", "us-east-1c"], zoneIds: ["use1-az1", "use1-az2", "use1-az4"] };
    case "aws:ec2/getVpc:getVpc":
      return { id: inputs.id ?? "vpc-0a1b2c3d4e5f60718", cidrBlock: "172.31.0.0/16", default: inputs.default ?? false };
    case "aws:ec2/getSubnet:getSubnet": {
      const zone = filterValue(inputs, "availability-zone") ?? "us-east-1a";
      const id = inputs.id ?? `subnet-${hex(zone, 17)}`;
      return { id, vpcId: filterValue(inputs, "vpc-id") ?? "vpc-0a1b2c3d4e5f60718", availabilityZone: zone, cidrBlock: "172.31.0.0/20" };
    }
    case "aws:ec2/getAmi:getAmi": {
      const arch = filterValue(inputs, "architecture") ?? "x86_64";
      const pattern: string = filterValue(inputs, "name") ?? "image-*";
      return { id: `ami-${hex(arch, 17)}`, architecture: arch, name: pattern.replace("*", "20261101"), ownerId: inputs.owners?.[0] };
    }
    case "aws:kms/getKey:getKey": {
      // Only the AWS-managed keys are looked up, by alias; each region has its own.
      const region = inputs.region ?? "us-east-1";
      const id = hex(`${region}/${inputs.keyId}`, 32).replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, "$1-$2-$3-$4-$5");
      return { id, keyId: id, arn: `arn:aws:kms:${region}:123456789012:key/${id}`, keyManager: "AWS", region };
    }
    case "cloudflare:index/getZone:getZone": {
      const zone = inputs.filter?.name ?? "example.com";
      zoneNames.set(hex(zone, 32), zone);
      return { id: hex(zone, 32), zoneId: hex(zone, 32), name: zone, nameServers: ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"], status: "active" };
    }
    case "aws:route53/getZone:getZone": {
      const zone = String(inputs.name ?? "example.com").replace(/\.$/, "");
      const id = `Z${hex(`route53/${zone}`, 20).toUpperCase()}`;
      return {
        id,
        zoneId: id,
        name: zone,
        arn: `arn:aws:route53:::hostedzone/${id}`,
        privateZone: inputs.privateZone ?? false,
        nameServers: ["ns-1.awsdns-01.org", "ns-2.awsdns-02.co.uk", "ns-3.awsdns-03.com", "ns-4.awsdns-04.net"],
        primaryNameServer: "ns-1.awsdns-01.org",
        callerReference: `mailstack-plan-${zone}`,
        comment: "",
        linkedServiceDescription: "",
        linkedServicePrincipal: "",
        resourceRecordSetCount: 2,
        tags: {},
      };
    }
    default: {
      const message = `mailstack plan has no answer for the data source ${token}; add it to the mock runtime`;
      // The SDK reports a failed invoke by the gRPC error's `details`, not its message.
      throw Object.assign(new Error(message), { details: message });
    }
  }
}

interface MockRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getDependenciesList(): string[];
  getProtect(): boolean;
  getDeletebeforereplace(): boolean;
  getRetainondelete(): boolean;
  getIgnorechangesList(): string[];
  getAdditionalsecretoutputsList(): string[];
}

/**
 * Installs the recording mock runtime into the @pulumi/pulumi that `requireFrom` loads (the
 * program's own copy, so its resources reach these mocks). Call before the program runs;
 * `project` and `stack` become pulumi.getProject() / getStack().
 */
export function installMocks(project: string, stack: string, requireFrom: NodeRequire = require): PlanRecord {
  const record: PlanRecord = { resources: [], invokes: [] };
  const { MockMonitor } = requireFrom("@pulumi/pulumi/runtime/mocks") as {
    MockMonitor: new (mocks: pulumi.runtime.Mocks) => { registerResource(req: unknown, callback: unknown): Promise<void> };
  };
  const settings = requireFrom("@pulumi/pulumi/runtime/settings");
  const state = requireFrom("@pulumi/pulumi/runtime/state");
  const pending = new Map<string, MockRequest>();

  const mocks: pulumi.runtime.Mocks = {
    async newResource(args) {
      const request = pending.get(`${args.type}::${args.name}`);
      const secretPaths: string[] = [];
      // The monitor passes inputs with secrets still marked (it deserialises them as such).
      const inputs = unwrapSecrets(args.inputs, "", secretPaths) as Record<string, any>;
      const { id, state } = args.custom ? await computed(args.type, args.name, inputs) : { id: "", state: {} };
      record.resources.push({
        urn: "",
        type: args.type,
        name: args.name,
        custom: args.custom ?? true,
        inputs,
        secretPaths,
        parent: request?.getParent() ?? "",
        dependsOn: request?.getDependenciesList() ?? [],
        protect: request?.getProtect() ?? false,
        deleteBeforeReplace: request?.getDeletebeforereplace() ?? false,
        retainOnDelete: request?.getRetainondelete() ?? false,
        ignoreChanges: request?.getIgnorechangesList() ?? [],
        additionalSecretOutputs: request?.getAdditionalsecretoutputsList() ?? [],
        id: args.custom ? id : undefined,
        state,
      });
      return { id: args.custom ? id : undefined, state };
    },
    call(args) {
      record.invokes.push({ token: args.token, inputs: args.inputs });
      return invoke(args.token, args.inputs);
    },
  };

  class RecordingMonitor extends MockMonitor {
    override async registerResource(req: MockRequest, callback: (err: unknown, response?: unknown) => void) {
      pending.set(`${req.getType()}::${req.getName()}`, req);
      const done = (err: unknown, response?: { getUrn(): string }) => {
        const recorded = record.resources.find((r) => r.type === req.getType() && r.name === req.getName() && r.urn === "");
        if (recorded && response) recorded.urn = response.getUrn();
        callback(err, response);
      };
      return super.registerResource(req, done);
    }
  }

  settings.setMockOptions(new RecordingMonitor(mocks), project, stack, false);
  const store = state.getStore();
  Object.assign(store, {
    supportsSecrets: true,
    supportsResourceReferences: true,
    supportsOutputValues: false,
    supportsDeletedWith: true,
    supportsAliasSpecs: true,
    supportsTransforms: true,
    supportsInvokeTransforms: true,
    supportsParameterization: true,
    supportsInvokeDependsOn: false,
  });
  return record;
}

/** Waits for every registration the program started to reach the mock monitor. */
export async function drain(requireFrom: NodeRequire = require): Promise<void> {
  await requireFrom("@pulumi/pulumi/runtime/settings").waitForRPCs();
}
