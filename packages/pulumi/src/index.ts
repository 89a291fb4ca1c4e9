export { DkimKey, type DkimKeyArgs } from "./dkim-key";
export { MailAlerts, type MailAlertsArgs } from "./mail-alerts";
export { MailBackup, type MailBackupArgs } from "./mail-backup";
export { MailDns, type MailDnsArgs } from "./mail-dns";
export { MailFirewall, type MailFirewallArgs } from "./mail-firewall";
export { CANONICAL_OWNER_ID, MailHost, type MailHostArgs } from "./mail-host";
export { type MailboxCredential, MailParameters, type MailParametersArgs } from "./mail-parameters";
export { type MailboxArgs, MailStack, type MailStackArgs, PORT_25_REQUEST_URL } from "./mail-stack";
export { MailStackConfigError, readStackConfig } from "./stack-config";
