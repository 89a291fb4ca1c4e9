// Every check between fields, in the order parseConfig runs them. A rule that fills a
// normalised value in the context (see ConfigContext) comes before every rule that reads it.
import { adminCidrsAreNetworks } from "./admin-cidrs-are-networks";
import { alarmsNeedAlertEmail } from "./alarms-need-alert-email";
import { alertEmailAddress } from "./alert-email-address";
import { appPasswords } from "./app-passwords";
import { aliasAddresses } from "./alias-addresses";
import { aliasTargetsDeliver } from "./alias-targets-deliver";
import { backupKeepsSnapshots } from "./backup-keeps-snapshots";
import { caaAllowsLetsEncrypt } from "./caa-allows-lets-encrypt";
import { catchAllPerDomain } from "./catch-all-per-domain";
import type { Rule } from "./context";
import { distinctDkimSelectors } from "./distinct-dkim-selectors";
import { distinctDomains } from "./distinct-domains";
import { disabledMailboxes } from "./disabled-mailboxes";
import { dnssecOnCloudflare } from "./dnssec-on-cloudflare";
import { existingBucketLeftAlone } from "./existing-bucket-left-alone";
import { generatedRoleAliases } from "./generated-role-aliases";
import { hostnameWithinDomains } from "./hostname-within-domains";
import { instanceTypeKnown } from "./instance-type-known";
import { kmsKeyInStackRegion } from "./kms-key-in-stack-region";
import { ldapDirectory } from "./ldap-directory";
import { mailboxAddresses } from "./mailbox-addresses";
import { mailboxCredentials } from "./mailbox-credentials";
import { mailboxQuotas } from "./mailbox-quotas";
import { mailboxSendingLimits } from "./mailbox-sending-limits";
import { noAliasLoops } from "./no-alias-loops";
import { nonMailDomainsApart } from "./non-mail-domains-apart";
import { objectLockWithinRetention } from "./object-lock-within-retention";
import { replicaInOtherRegion } from "./replica-in-other-region";
import { roleAddressesResolve } from "./role-addresses-resolve";
import { secondaryMxAfterHost } from "./secondary-mx-after-host";
import { sesServices } from "./ses-services";
import { spfIncludeLimit } from "./spf-include-limit";
import { stackRegionExists } from "./stack-region-exists";
import { subnetOrZone } from "./subnet-or-zone";
import { verificationRecordsOnManagedDomains } from "./verification-records-on-managed-domains";
import { vpcNeedsSubnet } from "./vpc-needs-subnet";
import { zoneIdsForManagedDomains } from "./zone-ids-for-managed-domains";
import { zoneIdsMatchProvider } from "./zone-ids-match-provider";
import { zoneInStackRegion } from "./zone-in-stack-region";

export { ConfigContext, type ParseOptions, type Rule } from "./context";

export const RULES: readonly Rule[] = [
  // Domains and host name: everything below reads them.
  distinctDomains,
  hostnameWithinDomains,
  // Who receives mail: addresses are claimed in this order, so a repeat is reported at its second place.
  mailboxAddresses,
  mailboxCredentials,
  appPasswords,
  mailboxQuotas,
  mailboxSendingLimits,
  aliasAddresses,
  aliasTargetsDeliver,
  roleAddressesResolve,
  generatedRoleAliases,
  noAliasLoops,
  // Once every receiving address is known: what a disabled mailbox leaves without a reader, and the catch-alls.
  disabledMailboxes,
  catchAllPerDomain,
  // The directory's users: in hosted domains, none of them a catch-all's.
  ldapDirectory,
  // The host.
  adminCidrsAreNetworks,
  instanceTypeKnown,
  alertEmailAddress,
  alarmsNeedAlertEmail,
  objectLockWithinRetention,
  existingBucketLeftAlone,
  vpcNeedsSubnet,
  subnetOrZone,
  // DNS: the MX list starts with the host name; zone ids and verification records may name non-mail domains.
  distinctDkimSelectors,
  secondaryMxAfterHost,
  spfIncludeLimit,
  caaAllowsLetsEncrypt,
  nonMailDomainsApart,
  zoneIdsForManagedDomains,
  verificationRecordsOnManagedDomains,
  dnssecOnCloudflare,
  zoneIdsMatchProvider,
  backupKeepsSnapshots,
  // The stack's region, when the caller passes it.
  stackRegionExists,
  zoneInStackRegion,
  replicaInOtherRegion,
  kmsKeyInStackRegion,
  // SES: its region may be the stack's; its MX comes after every other.
  sesServices,
];
