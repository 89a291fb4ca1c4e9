import type { MailConfigInput } from "@mailstack/core";
import type { MailStackArgs } from "@mailstack/pulumi";
import { createHash } from "node:crypto";

/** A fixture config as MailStack args (the fixtures type passwords as `unknown`). */
export function stackArgs(config: MailConfigInput, extra: Partial<MailStackArgs> = {}): MailStackArgs {
  return { ...config, ...extra } as MailStackArgs;
}

/** The subnet id the recording mock answers for the default subnet of a zone. */
export function mockSubnetId(zone: string): string {
  return `subnet-${createHash("sha256").update(zone).digest("hex").slice(0, 17)}`;
}

/** The zone id the recording mock answers for a Cloudflare zone looked up by name. */
export function mockZoneId(domain: string): string {
  return createHash("sha256").update(domain).digest("hex").slice(0, 32);
}

/** The hosted zone id the recording mock answers for a Route 53 zone looked up by name. */
export function mockRoute53ZoneId(domain: string): string {
  return `Z${createHash("sha256").update(`route53/${domain}`).digest("hex").slice(0, 20).toUpperCase()}`;
}
