// A complete mail deployment written out in TypeScript: two domains, three mailboxes, group
// aliases and most of MailStack's options set explicitly, each with the default it replaces.
// Only the domains, the alert address, admin networks and the secrets come from stack config.
import { MailStack } from "@mailstack/pulumi";
import * as pulumi from "@pulumi/pulumi";

const config = new pulumi.Config();
const domain = config.require("domain"); // e.g. example.com
const secondDomain = config.require("secondDomain"); // e.g. example.org

const mail = new MailStack("mail", {
  domain,
  extraDomains: [secondDomain],
  // Default: mail.<domain>. The name must lie within one of the domains.
  hostname: `mail.${domain}`,

  mailboxes: [
    {
      address: `alice@${domain}`,
      // requireSecret keeps the password a Pulumi secret; MailStack hashes it (bcrypt) and
      // the hash reaches the host only through an encrypted SSM parameter.
      password: config.requireSecret("alicePassword"),
      quota: "10G", // default 5G
      aliases: [`alice@${secondDomain}`, `a.smith@${domain}`],
    },
    {
      address: `bob@${domain}`,
      password: config.requireSecret("bobPassword"),
    },
    {
      address: `carol@${secondDomain}`,
      // A hash made elsewhere (`doveadm pw -s BLF-CRYPT`): the plain password never enters
      // the stack. Accepted schemes: BLF-CRYPT, SHA512-CRYPT, SHA256-CRYPT, ARGON2ID, ARGON2I.
      passwordHash: config.requireSecret("carolPasswordHash"),
      quota: "unlimited",
    },
  ],
  aliases: [
    { address: `info@${domain}`, to: [`alice@${domain}`, `bob@${domain}`] },
    // An alias may point at another alias.
    { address: `hello@${secondDomain}`, to: [`info@${domain}`] },
    { address: `dmarc@${domain}`, to: [`alice@${domain}`] },
  ],
  // Default false: aliases may only deliver to mailboxes and aliases hosted here.
  allowExternalForwarding: false,
  // postmaster@ and abuse@ of every domain are generated and delivered here.
  postmaster: `alice@${domain}`, // default: the first mailbox
  abuse: `bob@${domain}`, // default: the postmaster

  // Start at "none" while you watch the aggregate reports, then "quarantine" (the default),
  // then "reject".
  dmarcPolicy: "none",
  dmarcReports: `dmarc@${domain}`, // default: the postmaster
  dmarcStrictAlignment: false,

  inboundTls: "opportunistic", // port 25; "required" refuses senders without TLS
  outboundTls: "dane", // DANE with a local validating resolver; "opportunistic" | "required"
  inboundTlsMinVersion: "TLSv1.2",

  // Empty (the default) means no SSH rule at all; use SSM Session Manager instead.
  adminCidrs: config.getObject<string[]>("adminCidrs") ?? [],
  instanceType: "t4g.medium", // default t4g.small; the AMI's architecture follows it
  // Empty in Pulumi.yaml means unset: the region's first zone.
  availabilityZone: config.get("availabilityZone") || undefined,
  rootVolumeGiB: 20, // default 16
  dataVolumeGiB: 50, // default 20: mail, the queue and certificates live here
  pop3: true, // default false: POP3S on port 995
  messageSizeLimitMiB: 40, // default 50
  dkimSelector: "mail", // default "mail"
  // Key rotation, one `pulumi up` per step: set dkimNextSelector to publish a new key; days
  // later make it dkimSelector and move the old selector to dkimPreviousSelector; then drop it.
  dkimNextSelector: undefined,
  dkimPreviousSelector: undefined,
  secondaryMx: [], // default none: only this host receives mail
  spfInclude: [], // default none: only the MX hosts may send as the domains
  mtaSts: "enforce", // default; "testing" reports TLS failures without refusing delivery
  caaIssuers: ["letsencrypt.org"], // default: only the CA the host uses may issue for it
  // Domains you own that never send mail: null MX, `v=spf1 -all` and DMARC p=reject.
  nonMailDomains: config.getObject<string[]>("nonMailDomains") ?? [],
  // Cloudflare (empty, the default) or route53; the zones must exist in that account.
  dnsProvider: (config.get("dnsProvider") || undefined) as "cloudflare" | "route53" | undefined,
  dnssec: false, // default false; true (Cloudflare only) signs the zones: add the DS records at the registrar
  backupRetentionDays: 180, // default 90
  // Receives the host's alarms (status checks and monitoring); use an address at another provider.
  alertEmail: config.require("alertEmail"),

  tags: { project: "mail", environment: pulumi.getStack(), "cost-center": "it" },
});

export const hostname = mail.hostname;
export const publicIp = mail.publicIp;
export const instanceId = mail.instanceId;
export const dnsRecords = mail.dnsRecords;
export const backupBucket = mail.backupBucketName;
export const dsRecords = mail.dsRecords;
export const nextSteps = mail.nextSteps;
