import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CONFIG_FIELDS, DEFAULTS, FIELD_KINDS, parseConfig } from "@mailstack/core";
import { load } from "js-yaml";
import { FIELDS } from "../../packages/core/src/config/fields";

// Pulumi.yaml's typed config is what `pulumi config set` checks and documents; it must match
// the core's model, or users get defaults the library does not have.
const project = load(readFileSync(join(__dirname, "..", "..", "Pulumi.yaml"), "utf8")) as {
  config: Record<string, { type: string; default?: unknown; description?: string; items?: { type: string } }>;
};
// Pulumi.yaml cannot declare object-typed values; these are documented in its comment instead.
const STRUCTURED: string[] = CONFIG_FIELDS.filter((f) => FIELDS[f].kind === "structured");

test("declares every scalar and list field of the config model, and nothing else", () => {
  expect(Object.keys(project.config).sort()).toEqual(CONFIG_FIELDS.filter((f) => !STRUCTURED.includes(f)).sort());
});

test.each(STRUCTURED)("its comment names the structured field %s", (field) => {
  expect(readFileSync(join(__dirname, "..", "..", "Pulumi.yaml"), "utf8")).toMatch(new RegExp(`^#.*\`${field}\``, "m"));
});

test.each(Object.entries(project.config))("%s has a description and a type matching the model", (key, decl) => {
  expect(decl.description?.length).toBeGreaterThan(10);
  const kind = FIELD_KINDS[key as keyof typeof FIELD_KINDS];
  if (kind === "string") expect(decl.type).toBe("string");
  else expect(["integer", "boolean", "array"]).toContain(decl.type);
  if (decl.type === "array") expect(decl.items).toEqual({ type: "string" });
});

test("defaults agree with the core's defaults", () => {
  for (const [key, value] of Object.entries(DEFAULTS)) {
    if (key in project.config) expect([key, project.config[key].default]).toEqual([key, value]);
  }
  // The remaining optional settings default to "unset" (empty), which the core fills in.
  const config = parseConfig({ domain: "example.com", mailboxes: [{ address: "a@example.com", passwordHash: "{BLF-CRYPT}$2b$10$ZUDnZFLyWULpJV/qWU2rc.XEThdZxhIbbWJepiA4ZKNDAB1Lb56sW" }] });
  expect(project.config.pop3.default).toBe(config.pop3);
  expect(project.config.rootVolumeGiB.default).toBe(config.rootVolumeGiB);
  expect(project.config.dataVolumeGiB.default).toBe(config.dataVolumeGiB);
  expect(project.config.inboundTls.default).toBe(config.tls.inbound);
  expect(project.config.outboundTls.default).toBe(config.tls.outbound);
  expect(project.config.inboundTlsMinVersion.default).toBe(config.tls.inboundMinVersion);
  expect(project.config.dmarcStrictAlignment.default).toBe(config.dmarc.strictAlignment);
  expect(project.config.allowExternalForwarding.default).toBe(config.allowExternalForwarding);
  expect(project.config.dnssec.default).toBe(config.dnssec);
  expect(project.config.dnsProvider.default).toBe(config.dnsProvider);
  expect(project.config.spfInclude.default).toEqual(config.spfIncludes);
  expect(project.config.nonMailDomains.default).toEqual(config.nonMailDomains);
  for (const key of ["hostname", "postmaster", "abuse", "dmarcReports", "alertEmail", "vpcId", "subnetId", "availabilityZone", "architecture", "dkimNextSelector", "dkimPreviousSelector", "backupReplicaRegion", "backupKmsKeyArn"]) {
    expect([key, project.config[key].default]).toEqual([key, ""]);
  }
  expect(project.config.domain.default).toBeUndefined();
});
