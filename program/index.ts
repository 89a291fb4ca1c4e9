// The reference deployment: one mail service from this stack's `mailstack:` configuration.
import { MailStack, readStackConfig } from "@mailstack/pulumi";

const mail = new MailStack("mail", readStackConfig());

export const hostname = mail.hostname;
export const publicIp = mail.publicIp;
export const instanceId = mail.instanceId;
export const dnsRecords = mail.dnsRecords;
export const backupBucket = mail.backupBucketName;
// Empty unless dnssec: the DS record of each zone, for the registrar.
export const dsRecords = mail.dsRecords;
export const nextSteps = mail.nextSteps;
