import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { type DnsRecord, zoneFile } from "@mailstack/core";
import { load } from "js-yaml";
import { drain, installMocks, type PlanRecord, type RecordedResource } from "./mock-runtime";
import { findProject, readStackFile } from "./project";

export interface PlanOptions {
  /** Directory of Pulumi.yaml, or below it. */
  program: string;
  /** Stack settings file; default Pulumi.example.yaml next to Pulumi.yaml. */
  config?: string;
  /** Where artifacts are written; nothing is written when undefined. */
  out?: string;
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
  const record = installMocks(project.name, config.stack, requireFrom);
  let exported: Record<string, unknown> = {};
  const resolved = (await pulumi.runtime.runInPulumiStack(async () => (exported = { ...requireFrom(project.main) }))) as Record<string, unknown>;
  await drain(requireFrom);
  checkUniqueUrns(record.resources);
  // The stack's outputs arrive resolved, secrets included: mask those the program exported as secrets.
  const outputs: Record<string, unknown> = { ...resolved };
  for (const [key, value] of Object.entries(exported)) {
    if (pulumi.Output.isInstance(value) && (await pulumi.isSecret(value))) outputs[key] = "[secret]";
  }
  const artifacts = options.out ? writeArtifacts(options.out, record, outputs) : [];
  return { project: project.name, stack: config.stack, record, outputs, artifacts };
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

/** Inputs with every secret replaced by "[secret]". */
export function maskedInputs(resource: RecordedResource): Record<string, unknown> {
  const copy = structuredClone(resource.inputs);
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
