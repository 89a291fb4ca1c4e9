import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { load, YAMLException } from "js-yaml";

export interface Project {
  dir: string;
  name: string;
  /** Absolute path of the compiled program. */
  main: string;
  /** Defaults declared in Pulumi.yaml's config block, by key without namespace. */
  defaults: Record<string, unknown>;
}

export class UsageError extends Error {}

/** A YAML file parsed, or a UsageError that names the file, the line and the parser's reason. */
function readYaml(file: string): unknown {
  const text = readFileSync(file, "utf8");
  try {
    return load(text, { filename: file });
  } catch (error) {
    if (!(error instanceof YAMLException)) throw error;
    const { line, column } = error.mark ?? { line: 0, column: 0 };
    throw new UsageError(`${file}:${line + 1}:${column + 1}: not valid YAML: ${error.reason}\n${error.mark?.snippet ?? ""}`.trimEnd());
  }
}

/** The 1-based line where a top-level key is written, for messages. */
function lineOf(text: string, key: string): number | undefined {
  const index = text.split("\n").findIndex((l) => l.startsWith(`${key}:`) || l.startsWith(`"${key}":`) || l.startsWith(`'${key}':`));
  return index < 0 ? undefined : index + 1;
}

/** Finds Pulumi.yaml in `start` or above it and reads what the plan needs from it. */
export function findProject(start: string): Project {
  let dir = resolve(start);
  while (!existsSync(join(dir, "Pulumi.yaml"))) {
    const up = dirname(dir);
    if (up === dir) throw new UsageError(`no Pulumi.yaml in ${start} or any directory above it; pass --program DIR`);
    dir = up;
  }
  const doc = (readYaml(join(dir, "Pulumi.yaml")) as any) ?? {};
  if (typeof doc.name !== "string") throw new UsageError(`${join(dir, "Pulumi.yaml")} has no project name`);
  const main = resolve(dir, typeof doc.main === "string" ? doc.main : ".");
  const defaults: Record<string, unknown> = {};
  for (const [key, decl] of Object.entries<Record<string, unknown> | unknown>(doc.config ?? {})) {
    if (decl && typeof decl === "object" && "default" in decl) defaults[key] = (decl as { default: unknown }).default;
    else if (typeof decl !== "object") defaults[key] = decl;
  }
  return { dir, name: doc.name, main, defaults };
}

export interface StackConfig {
  stack: string;
  /** The AWS region the stack deploys to: aws:region, else AWS_REGION / AWS_DEFAULT_REGION, as the provider reads it. */
  region: string;
  /** Full keys (namespace:key) to the string values Pulumi hands a program. */
  values: Record<string, string>;
  secretKeys: string[];
}

const SECURE = (value: unknown): value is { secure: string } =>
  typeof value === "object" && value !== null && Object.keys(value).length === 1 && "secure" in value;

/** A bcrypt hash of a throwaway password, standing in for encrypted password hashes. */
export const PLACEHOLDER_HASH = "{BLF-CRYPT}$2b$10$ZUDnZFLyWULpJV/qWU2rc.XEThdZxhIbbWJepiA4ZKNDAB1Lb56sW";
// Made only of characters no e-mail local part contains, so it passes the check that a
// password does not contain the mailbox's name.
const PLACEHOLDER_PASSWORD = "(:) [;] <,> (:) [;] <,>";
const PLACEHOLDER_MARKS = "()[]<>;:,";

/**
 * The dummy password of the n-th secret: each its own, as a mailbox's app passwords must differ
 * from its password and from one another, and still made of such characters alone.
 */
function placeholderPassword(n: number): string {
  let suffix = "";
  for (let rest = n; rest > 0; rest = Math.floor(rest / PLACEHOLDER_MARKS.length)) suffix += PLACEHOLDER_MARKS[rest % PLACEHOLDER_MARKS.length];
  return `${PLACEHOLDER_PASSWORD} ${suffix}`.trim();
}

/**
 * Replaces `secure:` values (which only the Pulumi CLI can decrypt) with dummy values of the
 * right form, and reports whether any were found.
 */
function substituteSecrets(value: unknown, path: string, count = { passwords: 0 }): { value: unknown; secret: boolean } {
  if (SECURE(value)) {
    return { value: path.endsWith("passwordHash") ? PLACEHOLDER_HASH : placeholderPassword(count.passwords++), secret: true };
  }
  if (Array.isArray(value)) {
    const items = value.map((v, i) => substituteSecrets(v, `${path}[${i}]`, count));
    return { value: items.map((i) => i.value), secret: items.some((i) => i.secret) };
  }
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).map(([k, v]) => [k, substituteSecrets(v, `${path}.${k}`, count)] as const);
    return { value: Object.fromEntries(entries.map(([k, v]) => [k, v.value])), secret: entries.some(([, v]) => v.secret) };
  }
  return { value, secret: false };
}

/**
 * Reads a stack settings file (Pulumi.<stack>.yaml) into the config a program would see,
 * with Pulumi.yaml's defaults for keys the file leaves out.
 */
export function readStackFile(file: string, project: Project): StackConfig {
  if (!existsSync(file)) throw new UsageError(`config file ${file} does not exist`);
  const doc = readYaml(file) ?? {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new UsageError(`${file}: is not a stack settings file; it holds a mapping with the settings under config:, e.g.\nconfig:\n  mailstack:domain: example.com`);
  }
  const text = readFileSync(file, "utf8");
  const misplaced = Object.keys(doc).filter((key) => !STACK_FILE_KEYS.has(key));
  if (misplaced.length > 0) {
    const line = lineOf(text, misplaced[0]);
    const example = misplaced.map((key) => `\n  ${key.includes(":") ? key : `${project.name}:${key}`}: …`).join("");
    throw new UsageError(
      `${file}${line ? `:${line}` : ""}: ${misplaced.join(", ")} ${misplaced.length === 1 ? "is" : "are"} at the top level, where Pulumi ignores ${misplaced.length === 1 ? "it" : "them"}; ` +
        `stack settings go under config:, indented, like this:\nconfig:${example}`,
    );
  }
  const { config: settings = {} } = doc as { config?: unknown };
  if (typeof settings !== "object" || settings === null || Array.isArray(settings)) {
    throw new UsageError(`${file}${lineOf(text, "config") ? `:${lineOf(text, "config")}` : ""}: config: must hold the settings as key: value lines, indented below it`);
  }
  const match = /^Pulumi\.(.+)\.ya?ml$/.exec(basename(file));
  const stack = match ? match[1] : "plan";
  const given: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(settings)) {
    given[key.includes(":") ? key : `${project.name}:${key}`] = value;
  }
  for (const [key, value] of Object.entries(project.defaults)) {
    const full = key.includes(":") ? key : `${project.name}:${key}`;
    if (!(full in given)) given[full] = value;
  }
  const values: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, raw] of Object.entries(given)) {
    const { value, secret } = substituteSecrets(raw, key.slice(key.indexOf(":") + 1));
    values[key] = typeof value === "string" ? value : JSON.stringify(value);
    if (secret) secretKeys.push(key);
  }
  const region = values["aws:region"] || process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION;
  if (!region) {
    throw new UsageError(`${file}: aws:region is not set, and the AWS provider needs it; add it under config:, e.g.\n  config:\n    aws:region: eu-west-1`);
  }
  return { stack, region, values, secretKeys };
}

/** The top-level keys of a Pulumi.<stack>.yaml; everything a program reads is below config:. */
const STACK_FILE_KEYS = new Set(["config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment"]);
