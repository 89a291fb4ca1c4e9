import * as v from "valibot";
import { SCHEMA, type SettledInput, unknownFields, withDefaults } from "./fields";
import type { MailConfigInput } from "./input";
import { ConfigError, describe, fromSchemaIssue } from "./issues";
import type { MailConfig } from "./model";
import { ConfigContext, type ParseOptions, RULES } from "./rules";

/**
 * Validates and normalises a configuration, or throws a {@link ConfigError} listing every
 * problem. Shape comes first (types, unknown keys, each field on its own); the checks between
 * fields run once the shape is right, so they never see a value of the wrong type.
 */
export function parseConfig(input: unknown, options: ParseOptions = {}): MailConfig {
  // valibot takes a list for an object with no keys; say what is wrong instead.
  if (Array.isArray(input)) throw new ConfigError([{ path: "", message: `must be an object, not ${describe(input)}` }]);
  const unknown = unknownFields(input);
  const shaped = v.safeParse(SCHEMA, input);
  if (!shaped.success || unknown.length > 0) throw new ConfigError([...unknown, ...(shaped.issues ?? []).map(fromSchemaIssue)]);
  const ctx = new ConfigContext(withDefaults(shaped.output as unknown as MailConfigInput), options);
  for (const rule of RULES) rule(ctx);
  if (ctx.issues.length > 0) throw new ConfigError(ctx.issues);
  return model(ctx);
}

/** The MailConfig from what the rules normalised and the input's settled values. */
function model(ctx: ConfigContext): MailConfig {
  const input: SettledInput = ctx.input;
  return {
    domain: ctx.domains[0],
    domains: ctx.domains,
    hostname: ctx.hostname,
    mailboxes: ctx.mailboxes,
    // Code-unit order, not the locale's: rendered files must not depend on where they are rendered.
    aliases: [...ctx.aliases].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0)),
    catchAll: [...ctx.catchAll].sort((a, b) => (a.domain < b.domain ? -1 : a.domain > b.domain ? 1 : 0)),
    allowExternalForwarding: input.allowExternalForwarding,
    postmaster: ctx.postmaster,
    abuse: ctx.abuse,
    dmarc: { policy: input.dmarcPolicy, reports: ctx.dmarcReports, strictAlignment: input.dmarcStrictAlignment },
    tls: { inbound: input.inboundTls, outbound: input.outboundTls, inboundMinVersion: input.inboundTlsMinVersion },
    adminCidrs: ctx.adminCidrs,
    instanceType: input.instanceType,
    architecture: ctx.architecture,
    rootVolumeGiB: input.rootVolumeGiB,
    dataVolumeGiB: input.dataVolumeGiB,
    pop3: input.pop3,
    messageSizeLimitMiB: input.messageSizeLimitMiB,
    dkimSelector: input.dkimSelector,
    dkimSelectors: ctx.dkimSelectors,
    dkimNextSelector: input.dkimNextSelector,
    dkimPreviousSelector: input.dkimPreviousSelector,
    mx: ctx.mx,
    spfIncludes: ctx.spfIncludes,
    mtaSts: input.mtaSts,
    caaIssuers: ctx.caaIssuers,
    nonMailDomains: ctx.nonMailDomains,
    dnssec: input.dnssec,
    verificationRecords: ctx.verificationRecords,
    dnsProvider: input.dnsProvider,
    backupRetentionDays: input.backupRetentionDays,
    backupObjectLock: input.backupObjectLock && { mode: input.backupObjectLock.mode, days: input.backupObjectLock.days },
    backupReplicaRegion: input.backupReplicaRegion,
    snapshotRetentionDays: input.snapshotRetentionDays,
    backupSchedule: input.backupSchedule,
    backupKeep: input.backupKeep,
    sendingLimits: input.sendingLimits,
    alertEmail: ctx.alertEmail,
    logRetentionDays: input.logRetentionDays,
    alarms: input.alarms ?? {},
    waitUntilHealthyMinutes: input.waitUntilHealthyMinutes,
    healthCheckSkip: input.healthCheckSkip,
    availabilityZone: input.availabilityZone,
    ...(ctx.ldap === undefined ? {} : { ldap: ctx.ldap }),
    ...(ctx.ses === undefined ? {} : { ses: ctx.ses }),
  };
}
