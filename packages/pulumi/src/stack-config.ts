import { CONFIG_FIELDS, ConfigError, type ConfigIssue, FIELD_KINDS, parseConfig, unknownField } from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";
import { MailStackConfigError } from "./config-error";
import type { Credential } from "./mail-parameters";
import type { LdapArgs, MailboxArgs, MailStackArgs } from "./mail-stack";

/**
 * MailStack args that are not fields of the configuration model but may still be set in stack
 * config, as strings: `parameterPath`, so that a stack deployed when the default path did not
 * name the project can pin it (`pulumi config set parameterPath /mailstack/<stack>/mail`).
 * Pulumi.yaml does not declare them: an empty or absent value means the default. MailStack
 * checks them.
 */
const STACK_ARG_KEYS = ["parameterPath"] as const satisfies readonly (keyof MailStackArgs)[];

/**
 * Reads MailStackArgs from the stack's configuration (the `mailstack:` keys declared in
 * Pulumi.yaml, and `parameterPath`) and validates all of it, secret values included, before
 * any resource exists. Passwords come back as Pulumi secrets whatever way they were set.
 */
export function readStackConfig(config: pulumi.Config = new pulumi.Config()): MailStackArgs {
  const issues: ConfigIssue[] = [];
  const input: Record<string, unknown> = {};
  const prefix = `${config.name}:`;
  const args: Record<string, string> = {};
  const knownList: readonly string[] = [...CONFIG_FIELDS, ...STACK_ARG_KEYS];
  const known = new Set<string>(knownList);
  // Read once: the runtime parses the whole configuration (a thousand mailboxes) on every read.
  const all = pulumi.runtime.allConfig();
  for (const [key, raw] of Object.entries(all)) {
    if (!key.startsWith(prefix)) continue;
    const field = key.slice(prefix.length);
    if (!known.has(field)) {
      issues.push(unknownField(field, field, knownList));
      continue;
    }
    if ((STACK_ARG_KEYS as readonly string[]).includes(field)) {
      if (raw !== "") args[field] = raw;
      continue;
    }
    if (FIELD_KINDS[field as keyof typeof FIELD_KINDS] === "string") {
      // Pulumi.yaml declares optional strings with an empty default: empty means unset.
      if (raw !== "") input[field] = raw;
      continue;
    }
    try {
      input[field] = JSON.parse(raw);
    } catch {
      issues.push({ path: field, message: `${JSON.stringify(raw)} is not a list, object, number or boolean; set it with \`pulumi config set --path\`` });
    }
  }
  if (issues.length > 0) throw new MailStackConfigError(issues);
  try {
    parseConfig(input);
  } catch (error) {
    if (error instanceof ConfigError) throw new MailStackConfigError(error.issues);
    throw error;
  }
  const secret = <T extends Credential>(c: T): T => ({
    ...c,
    password: c.password === undefined ? undefined : pulumi.secret(c.password),
    passwordHash: c.passwordHash === undefined ? undefined : pulumi.secret(c.passwordHash),
  });
  const mailboxes = (input.mailboxes as MailboxArgs[]).map((m) => ({ ...secret(m), ...(m.appPasswords && { appPasswords: m.appPasswords.map(secret) }) }));
  const ldap = input.ldap as LdapArgs | undefined;
  return { ...(input as unknown as MailStackArgs), ...args, mailboxes, ...(ldap && { ldap: { ...ldap, bindPassword: pulumi.secret(ldap.bindPassword) } }) };
}
