import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { ConfigError, type DnsRecord, HOST_OBJECTS, zoneFile } from "@mailstack/core";
import { load } from "js-yaml";
import { drain, installMocks, type PlanRecord, type RecordedResource, type StandIn } from "./mock-runtime";
import { findProject, PLACEHOLDER_HASH, readStackFile, UsageError } from "./project";
import { rootCause, watchProgram } from "./watch";

export interface PlanOptions {
  /** Directory of Pulumi.yaml, or below it. */
  program: string;
  /** Stack settings file; default Pulumi.example.yaml next to Pulumi.yaml. */
  config?: string;
  /** Where artifacts are written; nothing is written when undefined. */
  out?: string;
  /** Give up after this many seconds, naming what had not registered by then. Default 120. */
  timeoutSeconds?: number;
}

/**
 * A configuration error thrown by the program or by one of its applies (a secret that
 * resolved to a bad value), from any copy of the packages: recognised by class, not by name.
 */
export function isConfigError(error: unknown): error is Error {
  const { MailStackConfigError } = require("@mailstack/pulumi") as typeof import("@mailstack/pulumi");
  return MailStackConfigError.isInstance(error) || error instanceof ConfigError;
}

/** The program failed in a way a real `pulumi up` would fail too; each problem names where. */
export class PlanFailure extends Error {
  constructor(readonly problems: string[]) {
    super(`${problems.length === 1 ? "" : `${problems.length} problems:\n  `}${problems.join("\n  ")}`);
    this.name = "PlanFailure";
  }
}

export interface PlanResult {
  project: string;
  stack: string;
  record: PlanRecord;
  outputs: Record<string, unknown>;
  /** Artifact paths relative to `out`. */
  artifacts: string[];
}

/**
 * Runs a Pulumi program under the recording mock runtime with a stack's configuration and
 * returns what it would create. Nothing reaches a cloud: data sources get canned answers.
 */
export async function plan(options: PlanOptions): Promise<PlanResult> {
  const project = findProject(options.program);
  const stackFile = options.config ?? join(project.dir, "Pulumi.example.yaml");
  const config = readStackFile(stackFile, project);
  // Use the program's own @pulumi/pulumi: mocks installed in another copy would never see it.
  const requireFrom = createRequire(join(project.dir, "package.json"));
  const pulumi: typeof import("@pulumi/pulumi") = requireFrom("@pulumi/pulumi");
  pulumi.runtime.setAllConfig(config.values, config.secretKeys);
  const record = installMocks(project.name, config.stack, { requireFrom, region: config.region, standIns: standIns() });
  const watch = watchProgram(requireFrom);
  let exported: Record<string, unknown> = {};
  let resolved: Record<string, unknown>;
  const seconds = options.timeoutSeconds ?? 120;
  let timer: NodeJS.Timeout | undefined;
  try {
    const run = async () => {
      const outputs = (await pulumi.runtime.runInPulumiStack(async () => (exported = { ...requireFrom(project.main) }))) as Record<string, unknown>;
      await drain(requireFrom);
      await watch.settle();
      return outputs;
    };
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const waiting = watch.pending(record);
        const problems = [...watch.problems(record, { unregistered: false }), `the program did not finish within ${seconds} s${waiting.length ? `; still waiting for ${waiting.join(", ")}` : ""}`];
        reject(new PlanFailure(problems));
      }, seconds * 1000);
    });
    resolved = await Promise.race([run(), timeout]);
  } catch (error) {
    throw isConfigError(error) ? new UsageError(`${stackFile}: ${rootCause(error)}`) : error;
  } finally {
    clearTimeout(timer);
    watch.stop();
  }
  const configError = watch.errors().find(isConfigError);
  if (configError) throw new UsageError(`${stackFile}: ${rootCause(configError)}`);
  const problems = watch.problems(record);
  if (problems.length > 0) throw new PlanFailure(problems);
  checkUniqueUrns(record.resources);
  // The stack's outputs arrive resolved, secrets included: mask those the program exported as secrets.
  const outputs: Record<string, unknown> = { ...resolved };
  for (const [key, value] of Object.entries(exported)) {
    if (pulumi.Output.isInstance(value) && (await pulumi.isSecret(value))) outputs[key] = "[secret]";
  }
  const artifacts = options.out ? writeArtifacts(options.out, record, outputs) : [];
  return { project: project.name, stack: config.stack, record, outputs, artifacts };
}

/**
 * Outputs the plan stands in for, as it stands in for `secure:` values: they are secrets it
 * never shows, and too costly to compute. Password hashes cost ~0.1 s each; `pulumi up`
 * computes them once per new or changed password and keeps them in the stack's state.
 */
function standIns(): Record<string, StandIn> {
  const { PASSWORD_HASHES_KIND } = require("@mailstack/pulumi") as typeof import("@mailstack/pulumi");
  return {
    [PASSWORD_HASHES_KIND]: (inputs) => ({ hashes: Object.fromEntries(Object.keys(inputs.passwords).map((address) => [address, PLACEHOLDER_HASH])) }),
  };
}

function checkUniqueUrns(resources: RecordedResource[]): void {
  const seen = new Set<string>();
  for (const r of resources) {
    if (seen.has(r.urn)) throw new Error(`two resources share the URN ${r.urn}; the Pulumi engine would refuse this program`);
    seen.add(r.urn);
  }
}

const INSTANCE = "aws:ec2/instance:Instance";

/** The #cloud-config document the instance boots with, decoded from its user data. */
export function userDataOf(record: PlanRecord): string | undefined {
  const instance = record.resources.find((r) => r.type === INSTANCE);
  const encoded = instance?.inputs.userDataBase64;
  if (typeof encoded !== "string") return undefined;
  return gunzipSync(Buffer.from(encoded, "base64")).toString("utf8");
}

const BUNDLE = "aws:s3/bucketObjectv2:BucketObjectv2";

/** The host bundle the plan publishes: its document and the files in it. */
export function bundleOf(record: PlanRecord): { key: string; document: string; files: { path: string; content: string }[] } | undefined {
  const object = record.resources.find((r) => r.type === BUNDLE && typeof r.inputs.key === "string" && r.inputs.key.includes(`/${HOST_OBJECTS.bundles}/`));
  if (typeof object?.inputs.content !== "string") return undefined;
  return { key: object.inputs.key as string, document: object.inputs.content, files: (JSON.parse(object.inputs.content) as { files: { path: string; content: string }[] }).files };
}

/**
 * Inputs with every secret replaced by "[secret]", and a dynamic resource's serialized
 * provider (generated code, with paths of this machine) by a marker.
 */
export function maskedInputs(resource: RecordedResource): Record<string, unknown> {
  const copy = structuredClone(resource.inputs);
  if (typeof copy.__provider === "string") copy.__provider = "[serialized provider]";
  for (const path of resource.secretPaths) {
    const keys = path.match(/[^.[\]]+/g) ?? [];
    if (keys.length === 0) return { "(all)": "[secret]" };
    let node: any = copy;
    for (const key of keys.slice(0, -1)) node = node?.[key];
    if (node && typeof node === "object") node[keys[keys.length - 1]] = "[secret]";
  }
  return copy;
}

function writeArtifacts(out: string, record: PlanRecord, outputs: Record<string, unknown>): string[] {
  rmSync(out, { recursive: true, force: true });
  const written: string[] = [];
  const write = (path: string, content: string) => {
    const full = join(out, path);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, content);
    written.push(path);
  };
  const userData = userDataOf(record);
  if (userData !== undefined) {
    write("user-data.yaml", userData);
    for (const file of (load(userData) as any).write_files ?? []) write(join("host", file.path), file.content);
  }
  const bundle = bundleOf(record);
  if (bundle !== undefined) {
    write("host-bundle.json", bundle.document);
    for (const file of bundle.files) write(join("host", file.path), file.content);
  }
  const records = (outputs.dnsRecords ?? []) as DnsRecord[];
  for (const zone of [...new Set(records.map((r) => r.zone))].sort()) write(join("zones", `${zone}.zone`), zoneFile(zone, records));
  write(
    "resources.json",
    JSON.stringify(
      record.resources.map((r) => ({ ...r, inputs: maskedInputs(r), state: undefined, secretPaths: undefined })),
      null,
      2,
    ) + "\n",
  );
  write("outputs.json", JSON.stringify(outputs, null, 2) + "\n");
  return written;
}
