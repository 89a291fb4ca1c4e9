import { dump } from "js-yaml";
import { FIELDS, type TopField } from "./fields";

const PULUMI_TYPES = { string: "string", integer: "integer", boolean: "boolean", list: "array" } as const;

/**
 * Pulumi.yaml with its `config:` block rendered from the field table, after the text that
 * `current` has above that block (the project settings and their comments). The block
 * declares every field but the structured ones; an optional string without a default gets
 * "", which mailstack reads as unset.
 */
export function pulumiYaml(current: string): string {
  const start = current.search(/^config:/m);
  const header = start < 0 ? current : current.slice(0, start);
  const config: Record<string, object> = {};
  for (const [key, field] of Object.entries(FIELDS as Record<string, TopField>)) {
    if (field.kind === "structured") continue;
    const unset = field.kind === "string" && field.schema.type === "optional" ? "" : undefined;
    config[key] = {
      type: PULUMI_TYPES[field.kind],
      ...(field.kind === "list" ? { items: { type: "string" } } : {}),
      description: field.summary,
      ...(field.default !== undefined || unset !== undefined ? { default: field.default ?? unset } : {}),
    };
  }
  return header + dump({ config }, { quotingType: '"', lineWidth: -1, noRefs: true });
}
