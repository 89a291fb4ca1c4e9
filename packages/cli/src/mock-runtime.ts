import { createHash, generateKeyPair, type KeyObject, randomBytes, randomInt } from "node:crypto";
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

/** The account and region the mock answers for: those of the stack, as the real provider would. */
export interface AwsContext {
  region: string;
  partition: string;
  dnsSuffix: string;
  reverseDnsPrefix: string;
  account: string;
}

/** The partition a region belongs to, as aws.getPartition reports it there. */
export function awsContext(region: string): AwsContext {
  const account = "123456789012";
  if (region.startsWith("cn-")) return { region, partition: "aws-cn", dnsSuffix: "amazonaws.com.cn", reverseDnsPrefix: "cn.com.amazonaws", account };
  if (region.startsWith("us-gov-")) return { region, partition: "aws-us-gov", dnsSuffix: "amazonaws.com", reverseDnsPrefix: "com.amazonaws", account };
  return { region, partition: "aws", dnsSuffix: "amazonaws.com", reverseDnsPrefix: "com.amazonaws", account };
}

/** Zone names by the ids the zone lookups answered, so a DS record can name its zone. */
const zoneNames = new Map<string, string>();

const hex = (seed: string, length: number) => createHash("sha256").update(seed).digest("hex").slice(0, length);

const generate = promisify(generateKeyPair) as (
  type: "rsa" | "ec",
  options: { modulusLength: number } | { namedCurve: string },
) => Promise<{ privateKey: KeyObject; publicKey: KeyObject }>;

/** Realistic state for what the cloud would compute, so derived inputs are never silently dropped. */
async function computed(type: string, name: string, inputs: Record<string, any>, aws: AwsContext): Promise<{ id: string; state: Record<string, any> }> {
  const h = (n: number) => hex(`${type}/${name}`, n);
  // AWS v7 resources may name a region of their own (a replica bucket); ARNs carry it.
  const region = inputs.region ?? aws.region;
  const arn = (service: string, resource: string, inRegion = region) => `arn:${aws.partition}:${service}:${inRegion}:${aws.account}:${resource}`;
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
      return { id: `i-${h(17)}`, state: { ...inputs, arn: arn("ec2", `instance/i-${h(17)}`), privateIp: "172.31.0.10" } };
    case "aws:ebs/volume:Volume":
      return { id: `vol-${h(17)}`, state: { ...inputs, arn: arn("ec2", `volume/vol-${h(17)}`) } };
    case "aws:ec2/securityGroup:SecurityGroup":
      return { id: `sg-${h(17)}`, state: { ...inputs, arn: arn("ec2", `security-group/sg-${h(17)}`) } };
    case "aws:iam/role:Role":
    case "aws:iam/instanceProfile:InstanceProfile": {
      const resourceName = inputs.name ?? `${name}-${h(7)}`;
      const kind = type.includes("role") ? "role" : "instance-profile";
      return { id: resourceName, state: { ...inputs, name: resourceName, arn: arn("iam", `${kind}/${resourceName}`, "") } };
    }
    case "aws:iam/user:User": {
      const userName = inputs.name ?? `${name}-${h(7)}`;
      return { id: userName, state: { ...inputs, name: userName, path: inputs.path ?? "/", arn: arn("iam", `user${inputs.path ?? "/"}${userName}`, ""), uniqueId: `AIDA${h(17).toUpperCase()}` } };
    }
    case "aws:iam/accessKey:AccessKey": {
      // A secret like AWS's (40 characters), random so that a test can look for it where it must not be.
      const id = `AKIA${h(16).toUpperCase()}`;
      return { id, state: { ...inputs, secret: randomBytes(30).toString("base64"), status: inputs.status ?? "Active" } };
    }
    case "aws:s3/bucket:Bucket": {
      const bucket = inputs.bucket ?? `${name}-${h(7)}`;
      return { id: bucket, state: { ...inputs, bucket, arn: `arn:${aws.partition}:s3:::${bucket}`, region } };
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
      return { id: inputs.name, state: { ...inputs, arn: arn("ssm", `parameter${inputs.name}`), version: 1 } };
    default: {
      // Every AWS resource has an ARN; without one, inputs derived from it would vanish.
      const [pkg, module] = type.split(/[:/]/);
      const generic = pkg === "aws" ? { arn: arn(module, `${name}-${h(8)}`) } : {};
      return { id: `${name}-${h(8)}`, state: { ...generic, ...inputs } };
    }
  }
}

function filterValue(inputs: Record<string, any>, filter: string): string | undefined {
  const found = (inputs.filters ?? []).find((f: { name: string }) => f.name === filter);
  return found?.values?.[0];
}

/** Answers for the data sources mailstack reads; anything else fails loudly instead of hanging. */
function invoke(token: string, inputs: Record<string, any>, aws: AwsContext): Record<string, any> {
  const region = inputs.region ?? aws.region;
  switch (token) {
    case "aws:index/getRegion:getRegion":
      return { id: region, name: region, region, endpoint: `ec2.${region}.${aws.dnsSuffix}`, description: region };
    case "aws:index/getCallerIdentity:getCallerIdentity":
      return { id: aws.account, accountId: aws.account, arn: `arn:${aws.partition}:iam::${aws.account}:user/plan`, userId: "AIDAPLAN" };
    case "aws:index/getPartition:getPartition":
      return { id: aws.partition, partition: aws.partition, dnsSuffix: aws.dnsSuffix, reverseDnsPrefix: aws.reverseDnsPrefix };
    case "aws:index/getAvailabilityZones:getAvailabilityZones": {
      const names = ["a", "b", "c"].map((letter) => `${region}${letter}`);
      return { id: region, names, zoneIds: names.map((zone) => `az-${hex(zone, 6)}`) };
    }
    case "aws:ec2/getVpc:getVpc":
      return { id: inputs.id ?? "vpc-0a1b2c3d4e5f60718", cidrBlock: "172.31.0.0/16", default: inputs.default ?? false };
    case "aws:ec2/getSubnet:getSubnet": {
      const zone = filterValue(inputs, "availability-zone") ?? `${region}a`;
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
      const id = hex(`${region}/${inputs.keyId}`, 32).replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, "$1-$2-$3-$4-$5");
      return { id, keyId: id, arn: `arn:${aws.partition}:kms:${region}:${aws.account}:key/${id}`, keyManager: "AWS", region };
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
        arn: `arn:${aws.partition}:route53:::hostedzone/${id}`,
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

const DYNAMIC = "pulumi-nodejs:dynamic:Resource";

/** Outputs of a dynamic resource of a given `kind` input, computed without running its provider. */
export type StandIn = (inputs: Record<string, any>) => Record<string, any>;

export interface MockOptions {
  /** Loads the program's modules: its @pulumi/pulumi, and what dynamic providers require. */
  requireFrom?: NodeRequire;
  /** The stack's aws:region. Default us-east-1. */
  region?: string;
  /** Stand-ins by the `kind` input of dynamic resources whose create is too costly to run. */
  standIns?: Record<string, StandIn>;
}

/**
 * A dynamic resource's provider from its serialized code (the `__provider` input), loaded as
 * Pulumi's dynamic-provider process loads it, with `require` resolving what the code requires.
 */
export function loadDynamicProvider(code: string, require: NodeRequire): Record<string, (...args: any[]) => Promise<any>> {
  const module = { exports: {} as { handler?: () => any } };
  new Function("exports", "require", "module", code)(module.exports, require, module);
  const provider = module.exports.handler?.();
  if (typeof provider?.create !== "function") throw new Error("a dynamic resource's provider has no create function");
  return provider;
}

/**
 * A dynamic resource, created as Pulumi's dynamic-provider process would: its serialized
 * provider is loaded (so a provider that cannot load fails here, as it would there) and its
 * create runs, unless a stand-in is given for its kind.
 */
async function dynamic(inputs: Record<string, any>, requireFrom: NodeRequire, standIns: Record<string, StandIn>): Promise<{ id: string; state: Record<string, any> }> {
  const { __provider: code, ...rest } = inputs;
  const provider = loadDynamicProvider(code, requireFrom);
  const standIn = standIns[rest.kind];
  if (standIn) return { id: String(rest.kind), state: { ...rest, ...standIn(rest) } };
  const created = await provider.create(rest);
  return { id: created.id, state: { ...rest, ...created.outs } };
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
 * `project` and `stack` become pulumi.getProject() / getStack(); ARNs, zones, endpoints and the
 * partition follow `region`, the stack's aws:region.
 */
export function installMocks(project: string, stack: string, options: MockOptions = {}): PlanRecord {
  const { requireFrom = require, region = "us-east-1", standIns = {} } = options;
  const aws = awsContext(region);
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
      const { id, state } = !args.custom
        ? { id: "", state: {} }
        : args.type === DYNAMIC
          ? await dynamic(inputs, requireFrom, standIns)
          : await computed(args.type, args.name, inputs, aws);
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
      return invoke(args.token, args.inputs, aws);
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
