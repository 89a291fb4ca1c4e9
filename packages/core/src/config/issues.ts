import type * as v from "valibot";
import { closest } from "./suggest";

/** One problem with a configuration, as {@link ConfigError} and the rules report it. */
export interface ConfigIssue {
  /** Field path as the user wrote it, e.g. `mailboxes[2].address`; empty for the configuration as a whole. */
  path: string;
  /** What is wrong and the fix, phrased to follow the path, e.g. `is required (string)`. */
  message: string;
}

/** Every problem with a configuration at once, each naming its field and the fix. */
export class ConfigError extends Error {
  constructor(
    /** Every problem found, in the order found. */
    readonly issues: ConfigIssue[],
  ) {
    super(
      `invalid mailstack configuration (${issues.length} problem${issues.length === 1 ? "" : "s"}):\n` +
        issues.map((i) => `  ${i.path || "(config)"}: ${i.message}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

/** An issue for a key that is not a field, with the nearest known name as a hint. */
export function unknownField(path: string, key: string, known: readonly string[]): ConfigIssue {
  const near = closest(key, known);
  const hint = near ? ` Did you mean "${near}"?` : "";
  return { path, message: `is not a known field.${hint} Known fields: ${known.join(", ")}` };
}

/**
 * A field path as the user writes it: keys joined by dots, list indexes in brackets, e.g.
 * `["mailboxes", 2, "address"]` as `mailboxes[2].address`; no keys give the empty string.
 */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** A schema issue in the words of the other messages: the path as typed, what was expected. */
export function fromSchemaIssue(issue: v.BaseIssue<unknown>): ConfigIssue {
  const keys = (issue.path ?? []).map((item) => item.key as PropertyKey);
  const path = formatPath(keys);
  if (issue.type === "object" && issue.input === undefined && keys.length > 0) return { path, message: "is required" };
  switch (issue.type) {
    case "string":
    case "number":
    case "boolean":
    case "array":
    case "record":
    case "object": {
      const expected = issue.type === "record" ? "object" : issue.type;
      if (issue.input === undefined) return { path, message: `is required (${expected})` };
      return { path, message: `must be ${article(expected)}, not ${describe(issue.input)}` };
    }
    case "integer":
      return { path, message: `must be an integer, not ${describe(issue.input)}` };
    case "picklist":
      return { path, message: `must be one of ${String(issue.expected).replace(/^\(|\)$/g, "").split(" | ").join(", ")}` };
    case "min_value":
      return { path, message: `must be at least ${String(issue.expected).replace(">=", "")}` };
    case "max_value":
      return { path, message: `must be at most ${String(issue.expected).replace("<=", "")}` };
    default:
      return { path, message: issue.message };
  }
}

/** A value as a message names it, never echoing more than the start of a long string. */
export function describe(value: unknown): string {
  if (value === undefined) return "undefined";
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "string") return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value)}`;
  if (typeof value === "object") return "an object";
  return `${typeof value} ${JSON.stringify(value)}`;
}

function article(expected: string): string {
  if (expected === "array") return "a list";
  if (expected === "object") return "an object";
  if (expected === "int") return "an integer";
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}
