export { checkOnCalendar } from "./calendar";
export {
  alarmSettingsIssues,
  APP_PASSWORD_SERVICES,
  BACKUP_RETENTION_DAYS,
  CONFIG_FIELDS,
  type Defaults,
  DEFAULTS,
  FIELD_KINDS,
  MAX_APP_PASSWORDS,
  OBJECT_LOCK_DAYS,
  type Range,
  SNAPSHOT_RETENTION_DAYS,
} from "./fields";
export type { AliasInput, AppPasswordInput, AppPasswordService, BackupKeep, BackupObjectLockInput, MailboxInput, MailboxSendingLimits, MailConfigInput, SecondaryMxInput, SendingLimits } from "./input";
export { ConfigError, type ConfigIssue, formatPath, unknownField } from "./issues";
export { type Alias, type AppPassword, type Mailbox, type MailConfig, PRIMARY_MX_PRIORITY } from "./model";
export { parseConfig } from "./parse";
export { checkPassword, checkPasswordHash, MAX_PASSWORD_HASH_LENGTH, MIN_APP_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from "./password-policy";
export { pulumiYaml } from "./pulumi-yaml";
export { AWS_REGION, checkAvailabilityZone, checkRegion, KMS_KEY_ARN, KNOWN_AWS_REGIONS } from "./regions";
export type { ParseOptions } from "./rules";
export type { LdapInput } from "./input";
export type { LdapConfig, SesConfig } from "./model";
export { bindPasswordProblem, DEFAULT_USER_FILTERS, MAX_BIND_PASSWORD_LENGTH } from "./ldap-syntax";
