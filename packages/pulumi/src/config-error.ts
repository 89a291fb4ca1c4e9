import { ConfigError, type ConfigIssue } from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";

/**
 * Every problem with a mailstack configuration, each with the field path as the user wrote it
 * and the fix. A RunError, so Pulumi prints the message alone, without a stack trace.
 *
 * Recognise it with {@link MailStackConfigError.isInstance}, which also holds for an instance
 * from another copy of this package (a program and a tool each resolving their own), where
 * `instanceof` would not.
 */
export class MailStackConfigError extends pulumi.RunError {
  /** @internal A brand that survives duplicate copies of the module, as Pulumi's own errors use. */
  readonly __mailstackConfigError = true;

  constructor(
    /** Every problem, each with its field path as the user wrote it; the message lists them all. */
    readonly issues: readonly ConfigIssue[],
  ) {
    super(new ConfigError([...issues]).message);
    this.name = "MailStackConfigError";
  }

  /** True when `obj` is a MailStackConfigError from any copy of @mailstack/pulumi. */
  static override isInstance(obj: unknown): obj is MailStackConfigError {
    return typeof obj === "object" && obj !== null && (obj as { __mailstackConfigError?: unknown }).__mailstackConfigError === true;
  }
}
