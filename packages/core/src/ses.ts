import { createHmac, createPrivateKey } from "node:crypto";
import type { MailConfig } from "./config";
import { deliveringAddresses } from "./config/model";
import { domainOf } from "./names";

// Amazon SES, as the stack uses it: a relay for outgoing mail (SMTP interface, port 587) and a
// lower-priority MX that keeps mail in S3 while the host is away. The tables are AWS's as of
// this release; a region added since is refused until they name it, because a relay or an MX
// that does not exist would lose mail rather than fail a deployment.

/** Regions with an SES SMTP endpoint (`email-smtp.<region>.amazonaws.com`). */
export const SES_SMTP_REGIONS = [
  "us-east-1", "us-east-2", "us-west-1", "us-west-2",
  "ca-central-1", "sa-east-1",
  "eu-central-1", "eu-central-2", "eu-west-1", "eu-west-2", "eu-west-3", "eu-south-1", "eu-north-1",
  "af-south-1", "il-central-1", "me-south-1", "me-central-1",
  "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-5",
  "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
  "us-gov-east-1", "us-gov-west-1",
] as const;

/** Regions where SES receives mail (`inbound-smtp.<region>.amazonaws.com`). */
export const SES_RECEIVING_REGIONS = [
  "us-east-1", "us-east-2", "us-west-2",
  "ca-central-1",
  "eu-central-1", "eu-west-1", "eu-west-2",
  "ap-northeast-1", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
] as const;

/** Largest message SES sends or receives, in bytes: "40 MB per message (after base64 encoding)". */
export const SES_MAX_MESSAGE_BYTES = 40_000_000;
/** Most recipients SES takes in one message; Postfix's relay hands over no more at a time. */
export const SES_MAX_RECIPIENTS = 50;

/** Most receipt rules one SES rule set holds: the safety net takes one per receiving address. */
export const SES_MAX_RECEIPT_RULES = 200;

/** The SMTP interface the relay transport delivers to. */
export const sesSmtpEndpoint = (region: string): string => `email-smtp.${region}.amazonaws.com`;
/** Postfix's next hop of the relay: the endpoint without an MX lookup, on the submission port. */
export const sesRelayNextHop = (region: string): string => `[${sesSmtpEndpoint(region)}]:587`;
/** The MX host of SES receiving, listed after the host and any secondary MX. */
export const sesInboundMx = (region: string): string => `inbound-smtp.${region}.amazonaws.com`;
/** Where bounces and complaints to a custom MAIL FROM domain go (its MX). */
export const sesFeedbackMx = (region: string): string => `feedback-smtp.${region}.amazonses.com`;
/** The custom MAIL FROM domain of a mail domain: SES's envelope sender, so SPF aligns with the From. */
export function sesMailFromDomain(config: MailConfig, domain: string): string {
  if (config.ses === undefined) throw new Error("sesMailFromDomain: the config has no ses settings");
  return `${config.ses.mailFromSubdomain}.${domain}`;
}
/** SPF of each MAIL FROM domain: only SES sends with it. */
export const SES_MAIL_FROM_SPF = "v=spf1 include:amazonses.com -all";

/**
 * The SES SMTP password of an IAM access key's secret in a region: AWS's documented
 * derivation (a SigV4 signing key over the fixed date 11111111, then "SendRawEmail", version
 * byte 4). It is a secret like the key it comes from.
 */
export function sesSmtpPassword(secretAccessKey: string, region: string): string {
  const sign = (key: Buffer | string, message: string) => createHmac("sha256", key).update(message, "utf8").digest();
  let signature = sign(`AWS4${secretAccessKey}`, "11111111");
  for (const part of [region, "ses", "aws4_request", "SendRawEmail"]) signature = sign(signature, part);
  return Buffer.concat([Buffer.from([4]), signature]).toString("base64");
}

/**
 * The DKIM key as SES's BYODKIM takes it: the RSA key's PKCS#1 DER in base64, with no PEM
 * armour or line breaks.
 */
export function sesDkimPrivateKey(pem: string): string {
  return createPrivateKey(pem).export({ type: "pkcs1", format: "der" }).toString("base64");
}

/** Prefix under the inbound bucket of the messages SES keeps; each rule's prefix is below it. */
export const SES_INBOUND_PREFIX = "inbound/";
/** Prefix messages the host refused on import are moved to (kept for the postmaster, then expired). */
export const SES_REJECTED_PREFIX = "rejected/";
/** Days a refused message stays under {@link SES_REJECTED_PREFIX}. */
export const SES_REJECTED_DAYS = 30;

/**
 * Each address SES accepts mail for while the host is away, with the object key prefix its
 * receipt rule stores under. One rule per address: SES's object holds the message but not its
 * envelope, so the prefix is what tells the importer whom a copy is for (a Bcc recipient too).
 * An address SES has no rule for is refused at RCPT, by SES, as the host would.
 */
export function sesReceivingRules(config: MailConfig): {
  /** The recipient condition: one hosted address that delivers. */
  address: string;
  /** Object key prefix of its copies: `inbound/<address>/`. */
  prefix: string;
}[] {
  const hosted = (address: string) => config.domains.includes(domainOf(address));
  return [...deliveringAddresses(config.mailboxes, config.aliases, hosted)]
    .filter(hosted)
    .sort()
    .map((address) => ({ address, prefix: `${SES_INBOUND_PREFIX}${address}/` }));
}

/** The runtime file of the relay's SMTP credentials (Postfix's smtp_sasl_password_maps), relative to the runtime directory. */
export const SES_SMTP_CREDENTIALS_FILE = "ses/smtp-credentials";

/** The relay's SMTP credentials: the IAM access key id and the password derived from its secret. */
export interface SesSmtpCredentials {
  /** The access key id, SES's SMTP user name. */
  username: string;
  /** {@link sesSmtpPassword} of its secret in the SES region. */
  password: string;
}

/** The credentials file: `[endpoint]:587 user:password`, the one line Postfix looks up for the relay's next hop. */
export function sesSmtpCredentialsFile(config: MailConfig, credentials: SesSmtpCredentials): string {
  if (config.ses === undefined) throw new Error("sesSmtpCredentialsFile: the config has no ses settings");
  return `${sesRelayNextHop(config.ses.region)} ${credentials.username}:${credentials.password}\n`;
}
