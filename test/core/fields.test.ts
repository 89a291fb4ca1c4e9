// The field table is the one home of each field's default, bounds and stack-config kind:
// Pulumi.yaml is rendered from it and docs/configuration.md is held to it here.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BACKUP_RETENTION_DAYS, CONFIG_FIELDS, DEFAULTS, FIELD_KINDS, parseConfig, pulumiYaml, SNAPSHOT_RETENTION_DAYS } from "@mailstack/core";
import { FIELDS, withDefaults } from "../../packages/core/src/config/fields";
import { fullConfig, minimalConfig } from "../support/fixtures";

const ROOT = join(__dirname, "..", "..");
type Schema = { type: string; wrapped?: Schema; item?: Schema };
const unwrap = (schema: Schema): Schema => (schema.type === "optional" ? unwrap(schema.wrapped!) : schema);

test("Pulumi.yaml's config block is the one the field table renders", () => {
  const committed = readFileSync(join(ROOT, "Pulumi.yaml"), "utf8");
  // To update it: npm run build && node scripts/pulumi-yaml.mjs
  expect(committed).toBe(pulumiYaml(committed));
  expect(committed).toMatch(/^name: mailstack\n/);
});

test("Pulumi.yaml's header names every structured field", () => {
  const header = readFileSync(join(ROOT, "Pulumi.yaml"), "utf8").split(/^config:/m)[0];
  for (const [key, field] of Object.entries(FIELDS)) if (field.kind === "structured") expect([key, header.includes(`\`${key}\``)]).toEqual([key, true]);
});

test("each field's stack-config kind matches its schema", () => {
  const kindOf = (schema: Schema): string => {
    const inner = unwrap(schema);
    if (["string", "picklist", "unknown"].includes(inner.type)) return "string";
    if (inner.type === "number") return "integer";
    if (inner.type === "boolean") return "boolean";
    if (inner.type === "array" && inner.item?.type === "string") return "list";
    return "structured";
  };
  for (const [key, field] of Object.entries(FIELDS)) expect([key, field.kind]).toEqual([key, kindOf(field.schema as Schema)]);
  expect(Object.keys(FIELD_KINDS)).toEqual(CONFIG_FIELDS);
  expect(FIELD_KINDS.domain).toBe("string");
  expect(FIELD_KINDS.rootVolumeGiB).toBe("json");
});

test("every default is what parseConfig applies", () => {
  const config = parseConfig(minimalConfig());
  expect(config).toMatchObject({
    instanceType: DEFAULTS.instanceType,
    rootVolumeGiB: DEFAULTS.rootVolumeGiB,
    backupSchedule: DEFAULTS.backupSchedule,
    backupKeep: DEFAULTS.backupKeep,
    sendingLimits: DEFAULTS.sendingLimits,
    caaIssuers: DEFAULTS.caaIssuers,
    dmarc: { policy: DEFAULTS.dmarcPolicy, strictAlignment: DEFAULTS.dmarcStrictAlignment },
    tls: { inbound: DEFAULTS.inboundTls, outbound: DEFAULTS.outboundTls, inboundMinVersion: DEFAULTS.inboundTlsMinVersion },
  });
  expect(config.mailboxes[0].quotaMiB).toBe(5 * 1024);
  expect(DEFAULTS.quota).toBe("5G");
});

test("defaults fill nested objects and list items without touching the input", () => {
  const input = { ...fullConfig(), backupKeep: { daily: 14 } };
  const before = JSON.stringify(input);
  const settled = withDefaults(input);
  expect(settled.backupKeep).toEqual({ daily: 14, weekly: 4, monthly: 12 });
  expect(settled.mailboxes.map((m) => m.quota)).toEqual(["10G", "unlimited"]);
  expect(withDefaults(minimalConfig()).mailboxes[0]).toMatchObject({ quota: "5G", aliases: [] });
  expect(JSON.stringify(input)).toBe(before);
  // Each call gets its own copy of a list default.
  withDefaults(minimalConfig()).caaIssuers.push("example.net");
  expect(withDefaults(minimalConfig()).caaIssuers).toEqual(["letsencrypt.org"]);
});

test("the bounds components share are the fields'", () => {
  expect(SNAPSHOT_RETENTION_DAYS).toEqual({ min: FIELDS.snapshotRetentionDays.min, max: FIELDS.snapshotRetentionDays.max, default: DEFAULTS.snapshotRetentionDays });
  expect(BACKUP_RETENTION_DAYS).toEqual({ min: FIELDS.backupRetentionDays.min, max: FIELDS.backupRetentionDays.max, default: DEFAULTS.backupRetentionDays });
});

describe("docs/configuration.md agrees with the table", () => {
  const all = readFileSync(join(ROOT, "docs", "configuration.md"), "utf8");
  const docs = all.slice(all.indexOf("\n## Fields\n"), all.indexOf("\n## What a change does\n"));
  // The first two cells of each table row that names a field: `field` | default |
  const rows = new Map([...docs.matchAll(/^\| `(\w+)` \| ([^|]*(?:\\\|[^|]*)*) \|/gm)].map((m) => [m[1], m[2].trim()]));
  const shown = (value: unknown): string => {
    if (Array.isArray(value)) return `\`${JSON.stringify(value)}\``;
    if (typeof value === "object" && value !== null) return `\`{ ${Object.entries(value).map(([k, v]) => `${k}: ${v}`).join(", ")} }\``;
    return `\`${String(value)}\``;
  };

  test.each(Object.entries(DEFAULTS))("%s's default", (key, value) => {
    const cell = rows.get(key);
    if (Array.isArray(value) && value.length === 0 && cell?.startsWith("none")) return;
    expect(cell).toBe(shown(value));
  });

  test.each(Object.entries(FIELDS).filter(([, f]) => f.kind === "integer") as [string, { min: number; max: number }][])("%s's bounds", (key, field) => {
    expect(docs).toMatch(new RegExp(`^\\| \`${key}\` \\|.*\\b${field.min}–${field.max}\\b`, "m"));
  });
});
