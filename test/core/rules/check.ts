import type { MailConfigInput } from "@mailstack/core";
import { withDefaults } from "../../../packages/core/src/config/fields";
import { ConfigContext, type ParseOptions, type Rule, RULES } from "../../../packages/core/src/config/rules";
import { minimalConfig } from "../../support/fixtures";

export const PASSWORD = "correct horse battery staple";

/**
 * Runs one rule on the minimal config changed by `fields`, after the rules before it have
 * filled the context, and returns what this rule alone reported and the context it filled.
 */
export function check(rule: Rule, fields: Partial<MailConfigInput> = {}, options?: ParseOptions): { issues: { path: string; message: string }[]; ctx: ConfigContext } {
  const ctx = new ConfigContext(withDefaults({ ...minimalConfig(), ...fields }), options);
  const at = RULES.indexOf(rule);
  if (at < 0) throw new Error(`${rule.name} is not in RULES`);
  for (const earlier of RULES.slice(0, at)) earlier(ctx);
  ctx.issues.splice(0);
  rule(ctx);
  return { issues: ctx.issues, ctx };
}

/** The issues of one rule as `path: message` lines, for short expectations. */
export function lines(rule: Rule, fields: Partial<MailConfigInput> = {}, options?: ParseOptions): string[] {
  return check(rule, fields, options).issues.map((i) => `${i.path}: ${i.message}`);
}
