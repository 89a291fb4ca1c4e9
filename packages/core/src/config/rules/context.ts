import type { Architecture } from "../../instance-types";
import { checkAddress, checkDomain, domainOf } from "../../names";
import type { SettledInput } from "../fields";
import type { ConfigIssue } from "../issues";
import { checkPassword, checkPasswordHash } from "../password-policy";
import { type Alias, deliveringAddresses, type LdapConfig, type Mailbox, type MailConfig } from "../model";

/** A mailbox's or an app password's secret, as written: exactly one of the two. */
export interface CredentialInput {
  password?: unknown;
  passwordHash?: unknown;
}

/** Whether a credential is given as a hash rather than a password; null is how YAML writes an empty value, which is no value. */
export const givenAsHash = (given: CredentialInput): boolean => given.passwordHash !== undefined && given.passwordHash !== null;

/** What parseConfig may know besides the configuration itself. */
export interface ParseOptions {
  /**
   * The stack's AWS region (`aws:region`). With it, the region itself, the availability zone,
   * the backup replica's region and the KMS key's region are checked; without it, only
   * what each says on its own.
   */
  region?: string;
}

/** An alias written under `aliases`, with where each of its targets was written. */
export interface ExplicitAlias {
  alias: Alias;
  path: string;
  targetPaths: Map<string, string>;
}

/** A check between fields: reports into the context, and may fill normalised values in it. */
export type Rule = (ctx: ConfigContext) => void;

/**
 * What the rules share: the input with its defaults, the issues so far, and the normalised
 * values that some rules produce for later ones. Each value names the rule that fills it;
 * RULES (./index.ts) runs every producer before the rules that read its values. A value
 * whose input was invalid is left out (and its issue reported), so later rules check the rest.
 */
export class ConfigContext {
  readonly issues: ConfigIssue[] = [];

  /** distinctDomains: the primary domain, unless it is invalid. */
  domain: string | undefined;
  /** distinctDomains: every valid hosted domain, primary first. */
  readonly domains: string[] = [];
  /** hostnameWithinDomains */
  hostname = "";
  /** mailboxAddresses, aliasAddresses, generatedRoleAliases: the field that claimed each receiving address. */
  readonly owners = new Map<string, string>();
  /** mailboxAddresses */
  readonly mailboxes: Mailbox[] = [];
  /** mailboxAddresses (their aliases), aliasAddresses, generatedRoleAliases */
  readonly aliases: Alias[] = [];
  /** aliasAddresses */
  readonly explicitAliases: ExplicitAlias[] = [];
  /** roleAddressesResolve */
  postmaster = "";
  /** roleAddressesResolve */
  abuse = "";
  /** roleAddressesResolve */
  dmarcReports = "";
  /** catchAllPerDomain: in input order. */
  readonly catchAll: MailConfig["catchAll"] = [];
  /** ldapDirectory: the directory, when it is configured and valid. */
  ldap: LdapConfig | undefined;
  /** adminCidrsAreNetworks */
  readonly adminCidrs: string[] = [];
  /** instanceTypeKnown; arm64 stands in when the type is refused. */
  architecture: Architecture = "arm64";
  /** alertEmailAddress */
  alertEmail: string | undefined;
  /** distinctDkimSelectors: the signing selector first. */
  readonly dkimSelectors: string[] = [];
  /** secondaryMxAfterHost: this host first. */
  readonly mx: MailConfig["mx"] = [];
  /** spfIncludeLimit */
  readonly spfIncludes: string[] = [];
  /** caaAllowsLetsEncrypt */
  readonly caaIssuers: string[] = [];
  /** nonMailDomainsApart */
  readonly nonMailDomains: string[] = [];
  /** verificationRecordsOnManagedDomains */
  readonly verificationRecords: MailConfig["verificationRecords"] = [];
  /** sesServices: SES's settings, when it is used and they are valid. */
  ses: MailConfig["ses"];
  /** stackRegionExists: the stack's region, when it was given and is one. */
  region: string | undefined;

  constructor(
    readonly input: SettledInput,
    readonly options: ParseOptions = {},
  ) {}

  fail(path: string, message: string): void {
    this.issues.push({ path, message });
  }

  /** The normalised domain, or undefined after reporting why `raw` is none. */
  domainAt(path: string, raw: string, options: { serviceLabels?: boolean } = {}): string | undefined {
    const checked = checkDomain(raw, options);
    if (checked.ok) return checked.value;
    this.fail(path, checked.error);
    return undefined;
  }

  /** The normalised address, or undefined after reporting why `raw` is none. */
  addressAt(path: string, raw: string): string | undefined {
    const checked = checkAddress(raw);
    if (checked.ok) return checked.value;
    this.fail(path, checked.error);
    return undefined;
  }

  /**
   * Reports a credential at `path` that sets both password and passwordHash or neither, or
   * whose plain-string value fails the password policy for `address` (checked only once the
   * address is valid). Secret values are checked by the component once they resolve.
   */
  credentialAt(path: string, given: CredentialInput, address: string | undefined, minLength?: number): void {
    const hasPassword = given.password !== undefined && given.password !== null;
    if (hasPassword && givenAsHash(given)) this.fail(path, "sets both password and passwordHash; keep one");
    if (!hasPassword && !givenAsHash(given)) {
      this.fail(`${path}.password`, `is required (or passwordHash); set it with \`pulumi config set --secret --path '${path}.password'\``);
    }
    if (address !== undefined && typeof given.password === "string") {
      const problem = checkPassword(given.password, address, minLength);
      if (problem) this.fail(`${path}.password`, problem);
    }
    if (typeof given.passwordHash === "string") {
      const problem = checkPasswordHash(given.passwordHash);
      if (problem) this.fail(`${path}.passwordHash`, problem);
    }
  }

  /** Whether an address is in one of the hosted domains. */
  hosted(address: string): boolean {
    return this.domains.includes(domainOf(address));
  }

  /** {@link deliveringAddresses} of the mailboxes and aliases; read once every alias is known (after generatedRoleAliases). */
  delivering(): Set<string> {
    return deliveringAddresses(this.mailboxes, this.aliases, (address) => this.hosted(address));
  }

  /** Records `path` as the owner of a receiving address, or reports the earlier owner. */
  claim(address: string, path: string): boolean {
    const previous = this.owners.get(address);
    if (previous) {
      this.fail(path, `"${address}" is already used by ${previous}; each address may be a mailbox or an alias once`);
      return false;
    }
    this.owners.set(address, path);
    return true;
  }
}
