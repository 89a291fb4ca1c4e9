// The reference deployment: one mail service from this stack's `mailstack:` configuration.
import { MailStack, readStackConfig } from "@mailstack/pulumi";

const mail = new MailStack("mail", readStackConfig());

export const hostname = mail.hostname;
export const publicIp = mail.publicIp;
export const instanceId = mail.instanceId;
// Where the host reports its status and ships its journal: what `mailstack check` reads.
export const parameterPath = mail.parameterPath;
export const logGroupName = mail.logGroupName;
export const dnsRecords = mail.dnsRecords;
export const backupBucket = mail.backupBucketName;
// null without backupReplicaRegion: an undefined output would draw a warning on every run.
export const backupReplicaBucket = mail.backupReplicaBucketName ?? null;
export const resticRepository = mail.resticRepository;
// A secret output: `pulumi stack output resticPassword --show-secrets` prints it for safe keeping.
export const resticPassword = mail.resticPassword;
// Empty unless dnssec: the DS record of each zone, for the registrar.
export const dsRecords = mail.dsRecords;
export const nextSteps = mail.nextSteps;
// The host bundle this deployment publishes: the host runs it once its report says so.
export const hostBundleSha256 = mail.hostBundleSha256;
// Amazon SES, null without sesOutbound / sesInbound: the identities, their MAIL FROM domains and
// the relay's SMTP user name (its password stays a secret in SSM); the bucket SES keeps inbound
// mail in and the receipt rule set made active in SES's region.
export const sesIdentities = mail.sesIdentities ?? null;
export const sesMailFromDomains = mail.sesMailFromDomains ?? null;
export const sesSmtpUsername = mail.sesSmtpUsername ?? null;
export const sesInboundBucket = mail.sesInboundBucketName ?? null;
export const sesReceiptRuleSet = mail.sesReceiptRuleSetName ?? null;
