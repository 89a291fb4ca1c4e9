import { ConfigError, type ConfigIssue, type MailConfigInput, type ParseOptions, parseConfig } from "@mailstack/core";
import { fullConfig, minimalConfig, SAMPLE_HASH } from "../support/fixtures";

/** Runs parseConfig on an input that must be refused and returns every issue it reports. */
function issuesOf(input: unknown, options?: ParseOptions): ConfigIssue[] {
  let caught: unknown;
  try {
    parseConfig(input, options);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  const error = caught as ConfigError;
  expect(error.name).toBe("ConfigError");
  expect(error.issues.length).toBeGreaterThan(0);
  // The message lists every issue with its path, so a CLI user sees them all.
  for (const issue of error.issues) expect(error.message).toContain(issue.message);
  return error.issues;
}

const PASSWORD = "correct horse battery staple";
const APP_PASSWORD = "k3Jx9wQp2vLm8RtZ";
const base = (): MailConfigInput => minimalConfig();
const withMailboxes = (...extra: MailConfigInput["mailboxes"]): MailConfigInput => ({
  ...base(),
  mailboxes: [...base().mailboxes, ...extra],
});
const withAliases = (...aliases: NonNullable<MailConfigInput["aliases"]>): MailConfigInput => ({
  ...base(),
  mailboxes: [...base().mailboxes, { address: "bob@example.com", password: PASSWORD }],
  aliases,
});
const mailbox = (fields: Record<string, unknown>): MailConfigInput =>
  ({ ...base(), mailboxes: [{ address: "alice@example.com", ...fields }] }) as MailConfigInput;
const set = (fields: Record<string, unknown>): unknown => ({ ...base(), ...fields });
const LDAP = { url: "ldaps://ldap.example.com", bindDn: "cn=mail,ou=services,dc=example,dc=com", bindPassword: "bind secret", baseDn: "ou=people,dc=example,dc=com" };
const ldap = (fields: Record<string, unknown>): unknown => set({ ldap: { ...LDAP, ...fields } });

// A {SHA512-CRYPT} hash that is well-formed but one character over the 160 limit.
const LONG_HASH = "{SHA512-CRYPT}$6$rounds=" + "5".repeat(33) + "$" + "s".repeat(16) + "$" + "h".repeat(86);

type Case = [title: string, input: unknown, path: string, phrase: string];

const cases: Case[] = [
  // --- domains ---
  ["domain with a space", set({ domain: "exa mple.com" }), "domain", "is not a domain name"],
  ["domain with an underscore", set({ domain: "ex_ample.com" }), "domain", 'invalid label "ex_ample"'],
  ["domain with an @", set({ domain: "alice@example.com" }), "domain", "is not a domain name"],
  ["domain with a # (where a URL's host ends)", set({ domain: "example.com#x" }), "domain", 'may hold only letters, digits, "-" and "."'],
  ["secondary MX host with a \\ inside", set({ secondaryMx: [{ host: "mx2.exa\\mple.net" }] }), "secondaryMx[0].host", "is not a domain name"],
  ["domain with a URL scheme", set({ domain: "https://example.com" }), "domain", "is not a domain name"],
  ["single-label domain", set({ domain: "localhost" }), "domain", "single label"],
  ["label longer than 63", set({ domain: `${"a".repeat(64)}.com` }), "domain", "label longer than 63 characters"],
  ["name longer than 253", set({ domain: `${Array(5).fill("a".repeat(60)).join(".")}.com` }), "domain", "longer than 253"],
  ["label ending in a hyphen", set({ domain: "example-.com" }), "domain", 'invalid label "example-"'],
  ["malformed punycode label xn--invalid-", set({ domain: "xn--invalid-.example" }), "domain", 'invalid label "xn--invalid-"'],
  ["undecodable punycode label", set({ domain: "xn--a.example" }), "domain", "not a valid internationalised domain name"],
  ["IPv4 address as domain", set({ domain: "192.0.2.1" }), "domain", "IP addresses are not domains"],
  ["short-form IPv4 address as domain", set({ domain: "10.1" }), "domain", "IP addresses are not domains"],
  ["empty domain", set({ domain: "" }), "domain", "is empty"],
  ["blank domain", set({ domain: "   " }), "domain", "is empty"],
  ["extra domain listed twice (case-insensitive)", set({ extraDomains: ["example.org", "Example.ORG."] }), "extraDomains[1]", "listed twice"],
  ["extra domain equal to the primary", set({ extraDomains: ["example.com"] }), "extraDomains[0]", "listed twice (or is the primary domain)"],
  ["invalid extra domain", set({ extraDomains: ["example.org", "org"] }), "extraDomains[1]", "single label"],
  ["hostname outside hosted domains", set({ hostname: "mail.example.net" }), "hostname", "is not within any mail domain"],
  ["hostname equal to a domain", set({ hostname: "example.com" }), "hostname", "is a mail domain itself"],
  ["hostname equal to an extra domain", set({ extraDomains: ["example.org"], hostname: "EXAMPLE.org" }), "hostname", "use a name below it such as mail.example.org"],
  ["hostname that is not a name", set({ hostname: "mail host" }), "hostname", "is not a domain name"],

  // --- mailbox addresses ---
  ["mailbox address without domain", withMailboxes({ address: "bob@", password: PASSWORD }), "mailboxes[1].address", "is not an e-mail address; write it as name@domain"],
  ["mailbox address without @", withMailboxes({ address: "bob", password: PASSWORD }), "mailboxes[1].address", "write it as name@domain"],
  ["mailbox address without local part", withMailboxes({ address: "@example.com", password: PASSWORD }), "mailboxes[1].address", "write it as name@domain"],
  ["mailbox address with two @", withMailboxes({ address: "bob@carol@example.com", password: PASSWORD }), "mailboxes[1].address", "write it as name@domain"],
  ["mailbox in a non-hosted domain", withMailboxes({ address: "bob@example.net", password: PASSWORD }), "mailboxes[1].address", "is not in a hosted domain (example.com); add its domain to extraDomains"],
  ["mailbox with a bad domain", withMailboxes({ address: "bob@example..com", password: PASSWORD }), "mailboxes[1].address", "has a bad domain"],
  ["duplicate mailbox, case-insensitive", withMailboxes({ address: "Alice@Example.com", password: PASSWORD }), "mailboxes[1].address", "already used by mailboxes[0].address"],
  ["non-ASCII local part", withMailboxes({ address: "jürgen@example.com", password: PASSWORD }), "mailboxes[1].address", "SMTPUTF8"],
  ["quoted local part", withMailboxes({ address: '"bob"@example.com', password: PASSWORD }), "mailboxes[1].address", "quoted local part"],
  ["+ in the local part", withMailboxes({ address: "bob+news@example.com", password: PASSWORD }), "mailboxes[1].address", "sub-address delimiter"],
  ["double dot in the local part", withMailboxes({ address: "bob..smith@example.com", password: PASSWORD }), "mailboxes[1].address", "no leading, trailing or double dots"],
  ["leading dot in the local part", withMailboxes({ address: ".bob@example.com", password: PASSWORD }), "mailboxes[1].address", "no leading, trailing or double dots"],
  ["| in the local part (a command in an alias map)", withMailboxes({ address: "|/usr/bin/id&#@example.com", password: PASSWORD }), "mailboxes[1].address", 'must be letters, digits and . _ -'],
  ["# in the local part (a comment in a map)", withMailboxes({ address: "#x@example.com", password: PASSWORD }), "mailboxes[1].address", 'must be letters, digits and . _ -'],
  ["/ in the local part (a directory in the home)", withMailboxes({ address: "a/x@example.com", password: PASSWORD }), "mailboxes[1].address", 'must be letters, digits and . _ -'],
  ["apostrophe in the local part", withMailboxes({ address: "o'brien@example.com", password: PASSWORD }), "mailboxes[1].address", 'must be letters, digits and . _ -'],
  ["leading hyphen in the local part", withMailboxes({ address: "-bob@example.com", password: PASSWORD }), "mailboxes[1].address", 'starts with "-", which Postfix refuses'],
  ["local part longer than 64", withMailboxes({ address: `${"b".repeat(65)}@example.com`, password: PASSWORD }), "mailboxes[1].address", "the part before \"@\""],

  // --- credentials ---
  ["mailbox without password", mailbox({}), "mailboxes[0].password", "is required (or passwordHash)"],
  ["mailbox with null password", mailbox({ password: null }), "mailboxes[0].password", "pulumi config set --secret --path 'mailboxes[0].password'"],
  ["both password and passwordHash", mailbox({ password: PASSWORD, passwordHash: SAMPLE_HASH }), "mailboxes[0]", "sets both password and passwordHash"],
  ["short password", mailbox({ password: "short pass" }), "mailboxes[0].password", "shorter than 12 characters"],
  ["password of 11 multi-byte characters", mailbox({ password: "ü".repeat(11) }), "mailboxes[0].password", "shorter than 12 characters"],
  ["password over 72 bytes (ASCII)", mailbox({ password: "x".repeat(73) }), "mailboxes[0].password", "longer than 72 bytes"],
  ["password over 72 bytes but 37 characters (UTF-8)", mailbox({ password: "ü".repeat(37) }), "mailboxes[0].password", "bcrypt ignores the rest"],
  ["password containing the mailbox name", mailbox({ password: "my-ALICE-password-2024" }), "mailboxes[0].password", "contains the mailbox name"],
  ["passwordHash with {PLAIN}", mailbox({ passwordHash: "{PLAIN}correct horse battery" }), "mailboxes[0].passwordHash", "uses scheme {PLAIN}, which is weak or unsupported"],
  ["passwordHash with {MD5-CRYPT}", mailbox({ passwordHash: "{MD5-CRYPT}$1$abcdefgh$abcdefghijklmnopqrstuv" }), "mailboxes[0].passwordHash", "{MD5-CRYPT}, which is weak"],
  ["passwordHash with {SSHA}", mailbox({ passwordHash: "{SSHA}aGVsbG8gd29ybGQ=" }), "mailboxes[0].passwordHash", "use one of {BLF-CRYPT}"],
  ["passwordHash without scheme", mailbox({ passwordHash: SAMPLE_HASH.replace("{BLF-CRYPT}", "") }), "mailboxes[0].passwordHash", "must start with its scheme"],
  ["truncated {BLF-CRYPT} hash", mailbox({ passwordHash: SAMPLE_HASH.slice(0, -1) }), "mailboxes[0].passwordHash", "is not a well-formed {BLF-CRYPT} hash"],
  ["bcrypt cost out of range", mailbox({ passwordHash: SAMPLE_HASH.replace("$10$", "$32$") }), "mailboxes[0].passwordHash", "not a well-formed {BLF-CRYPT}"],
  ["malformed {SHA512-CRYPT} hash", mailbox({ passwordHash: "{SHA512-CRYPT}$6$salt$short" }), "mailboxes[0].passwordHash", "not a well-formed {SHA512-CRYPT} hash"],
  ["passwordHash over 160 characters", mailbox({ passwordHash: LONG_HASH }), "mailboxes[0].passwordHash", "longer than 160 characters"],
  ["quota that is not a size", mailbox({ password: PASSWORD, quota: "5 gallons" }), "mailboxes[0].quota", "is not a size; write e.g. 500M, 5G, 1T or unlimited"],
  ["zero quota", mailbox({ password: PASSWORD, quota: "0M" }), "mailboxes[0].quota", "is not a size"],
  ["quota rounding to zero MiB", mailbox({ password: PASSWORD, quota: "0.0001G" }), "mailboxes[0].quota", "is not a size"],
  ["quota over 1024T", mailbox({ password: PASSWORD, quota: `${"9".repeat(30)}G` }), "mailboxes[0].quota", "is larger than the largest quota, 1024T"],
  ["quota in kilobytes", mailbox({ password: PASSWORD, quota: "500K" }), "mailboxes[0].quota", "is not a size"],
  ["mailbox alias outside hosted domains", mailbox({ password: PASSWORD, aliases: ["alice@example.net"] }), "mailboxes[0].aliases[0]", "is not in a hosted domain"],
  ["mailbox alias equal to its own mailbox", mailbox({ password: PASSWORD, aliases: ["ALICE@example.com"] }), "mailboxes[0].aliases[0]", "already used by mailboxes[0].address"],
  ["mailbox alias with +", mailbox({ password: PASSWORD, aliases: ["a+b@example.com"] }), "mailboxes[0].aliases[0]", "sub-address delimiter"],
  [
    "mailbox alias that is another mailbox",
    { ...base(), mailboxes: [{ address: "alice@example.com", password: PASSWORD, aliases: ["x@example.com", "bob@example.com"] }, { address: "bob@example.com", password: PASSWORD }] },
    "mailboxes[1].address",
    "already used by mailboxes[0].aliases[1]",
  ],

  // --- app passwords ---
  ["app password without a credential", mailbox({ password: PASSWORD, appPasswords: [{ name: "phone" }] }), "mailboxes[0].appPasswords[0].password", "pulumi config set --secret --path 'mailboxes[0].appPasswords[0].password'"],
  ["app password with both password and passwordHash", mailbox({ password: PASSWORD, appPasswords: [{ name: "phone", password: APP_PASSWORD, passwordHash: SAMPLE_HASH }] }), "mailboxes[0].appPasswords[0]", "sets both password and passwordHash"],
  ["app password shorter than 16 characters", mailbox({ password: PASSWORD, appPasswords: [{ name: "phone", password: "fifteen chars!!" }] }), "mailboxes[0].appPasswords[0].password", "shorter than 16 characters"],
  ["app password equal to the mailbox's password", mailbox({ password: PASSWORD, appPasswords: [{ name: "phone", password: PASSWORD }] }), "mailboxes[0].appPasswords[0].password", "is the same as mailboxes[0].password"],
  [
    "two app passwords of one mailbox with one secret",
    mailbox({ password: PASSWORD, appPasswords: [{ name: "phone", password: APP_PASSWORD }, { name: "laptop", password: APP_PASSWORD }] }),
    "mailboxes[0].appPasswords[1].password",
    "is the same as mailboxes[0].appPasswords[0].password",
  ],
  ["app password with a weak hash scheme", mailbox({ password: PASSWORD, appPasswords: [{ name: "phone", passwordHash: "{PLAIN}k3Jx9wQp2vLm8RtZ" }] }), "mailboxes[0].appPasswords[0].passwordHash", "uses scheme {PLAIN}"],
  [
    "duplicate app-password names",
    mailbox({ password: PASSWORD, appPasswords: [{ name: "phone", passwordHash: SAMPLE_HASH }, { name: "phone", password: APP_PASSWORD }] }),
    "mailboxes[0].appPasswords[1].name",
    "is already the name of mailboxes[0].appPasswords[0]",
  ],
  ["app-password name with a colon", mailbox({ password: PASSWORD, appPasswords: [{ name: "phone:1", passwordHash: SAMPLE_HASH }] }), "mailboxes[0].appPasswords[0].name", "lower-case letters, digits and inner hyphens"],
  ["app-password name in capitals", mailbox({ password: PASSWORD, appPasswords: [{ name: "Phone", passwordHash: SAMPLE_HASH }] }), "mailboxes[0].appPasswords[0].name", "lower-case letters"],
  ["app-password name over 32 characters", mailbox({ password: PASSWORD, appPasswords: [{ name: "p".repeat(33), passwordHash: SAMPLE_HASH }] }), "mailboxes[0].appPasswords[0].name", "1 to 32"],
  ["app password with no services", mailbox({ password: PASSWORD, appPasswords: [{ name: "phone", passwordHash: SAMPLE_HASH, services: [] }] }), "mailboxes[0].appPasswords[0].services", "is empty, so it could log in nowhere"],
  ["app password for an unknown service", mailbox({ password: PASSWORD, appPasswords: [{ name: "phone", passwordHash: SAMPLE_HASH, services: ["smtp"] }] }), "mailboxes[0].appPasswords[0].services[0]", 'must be one of "imap", "pop3", "submission"'],
  ["app password listing a service twice", mailbox({ password: PASSWORD, appPasswords: [{ name: "phone", passwordHash: SAMPLE_HASH, services: ["imap", "imap"] }] }), "mailboxes[0].appPasswords[0].services[1]", 'lists "imap" twice'],
  ["app password for POP3 on a host without it", mailbox({ password: PASSWORD, appPasswords: [{ name: "phone", passwordHash: SAMPLE_HASH, services: ["pop3"] }] }), "mailboxes[0].appPasswords[0].services[0]", "set pop3: true"],
  [
    "more app passwords than slots",
    mailbox({ password: PASSWORD, appPasswords: Array.from({ length: 9 }, (_, i) => ({ name: `client-${i}`, passwordHash: SAMPLE_HASH })) }),
    "mailboxes[0].appPasswords",
    "at most 8",
  ],
  ["requireAppPasswords without an app password", mailbox({ password: PASSWORD, requireAppPasswords: true }), "mailboxes[0].requireAppPasswords", "nothing could log in"],
  ["app passwords that are not a list", mailbox({ password: PASSWORD, appPasswords: { phone: APP_PASSWORD } }), "mailboxes[0].appPasswords", "must be a list, not an object"],
  ["an unknown app-password field", mailbox({ password: PASSWORD, appPasswords: [{ name: "phone", passwordHash: SAMPLE_HASH, protocols: ["imap"] }] }), "mailboxes[0].appPasswords[0].protocols", "Known fields: name, password, passwordHash, services"],

  // --- aliases ---
  ["alias colliding with a mailbox", withAliases({ address: "Bob@example.com", to: ["alice@example.com"] }), "aliases[0].address", "already used by mailboxes[1].address"],
  ["alias listed twice", withAliases({ address: "info@example.com", to: ["alice@example.com"] }, { address: "info@example.com", to: ["bob@example.com"] }), "aliases[1].address", "already used by aliases[0].address"],
  ["alias loop a → b → a", withAliases({ address: "a@example.com", to: ["b@example.com"] }, { address: "b@example.com", to: ["a@example.com"] }), "aliases[0].to", "alias loop a@example.com → b@example.com → a@example.com"],
  [
    "alias 3-cycle",
    withAliases(
      { address: "a@example.com", to: ["alice@example.com", "b@example.com"] },
      { address: "b@example.com", to: ["c@example.com"] },
      { address: "c@example.com", to: ["a@example.com"] },
    ),
    "aliases[0].to",
    "alias loop a@example.com → b@example.com → c@example.com → a@example.com; break the cycle",
  ],
  [
    "alias loop entered from outside the cycle",
    withAliases(
      { address: "entry@example.com", to: ["b@example.com"] },
      { address: "b@example.com", to: ["c@example.com"] },
      { address: "c@example.com", to: ["b@example.com"] },
    ),
    "aliases[1].to",
    "alias loop b@example.com → c@example.com → b@example.com",
  ],
  [
    "alias loop through the generated postmaster@",
    { ...withAliases({ address: "team@example.com", to: ["postmaster@example.com"] }), postmaster: "team@example.com" },
    "aliases[0].to",
    "alias loop team@example.com → postmaster@example.com → team@example.com",
  ],
  [
    "alias loop through the generated abuse@ of another domain",
    { ...withAliases({ address: "team@example.com", to: ["alice@example.com", "abuse@example.org"] }), extraDomains: ["example.org"], abuse: "team@example.com" },
    "aliases[0].to",
    "alias loop",
  ],
  ["alias forwarding outside without allowExternalForwarding", withAliases({ address: "fwd@example.com", to: ["alice@example.com", "someone@gmail.com"] }), "aliases[0].to[1]", "set allowExternalForwarding: true"],
  ["alias to an unknown local address", withAliases({ address: "info@example.com", to: ["carol@example.com"] }), "aliases[0].to[0]", "is neither a mailbox nor an alias here"],
  ["alias with an empty target list", withAliases({ address: "info@example.com", to: [] }), "aliases[0].to", "is empty; list at least one destination"],
  ["catch-all alias", withAliases({ address: "@example.com", to: ["alice@example.com"] }), "aliases[0].address", "is a catch-all"],
  ["duplicate alias targets (case-insensitive)", withAliases({ address: "info@example.com", to: ["alice@example.com", "ALICE@example.com"] }), "aliases[0].to[1]", "is listed twice; remove one"],
  ["alias to itself", withAliases({ address: "info@example.com", to: ["Info@example.com", "bob@example.com"] }), "aliases[0].to[0]", "forwards the alias to itself"],
  ["alias address outside hosted domains", withAliases({ address: "info@example.net", to: ["bob@example.com"] }), "aliases[0].address", "is not in a hosted domain"],
  ["alias target that is not an address", withAliases({ address: "info@example.com", to: ["bob@example.com", "bob"] }), "aliases[0].to[1]", "is not an e-mail address"],

  // --- recipients of postmaster, abuse, DMARC reports ---
  ["dmarcPolicy strict", set({ dmarcPolicy: "strict" }), "dmarcPolicy", 'must be one of "none", "quarantine", "reject"'],
  ["dmarcReports outside hosted domains", set({ dmarcReports: "reports@example.net" }), "dmarcReports", "is outside the hosted domains; use a mailbox or alias on example.com"],
  ["dmarcReports that does not exist", set({ dmarcReports: "reports@example.com" }), "dmarcReports", "is neither a mailbox nor an alias"],
  ["dmarcReports that is not an address", set({ dmarcReports: "reports" }), "dmarcReports", "is not an e-mail address"],
  ["postmaster that does not resolve", set({ postmaster: "root@example.com" }), "postmaster", "is neither a mailbox nor an alias; add it to mailboxes or aliases"],
  ["postmaster@ as its own target", set({ postmaster: "postmaster@example.com" }), "postmaster", "is neither a mailbox nor an alias"],
  ["postmaster outside hosted domains", set({ postmaster: "alice@example.net" }), "postmaster", "is outside the hosted domains"],
  ["abuse that does not resolve", set({ abuse: "abuse-desk@example.com" }), "abuse", "is neither a mailbox nor an alias"],
  ["abuse@ as its own target", set({ abuse: "abuse@example.com" }), "abuse", "is neither a mailbox nor an alias"],
  ["alertEmail that is not an address", set({ alertEmail: "ops" }), "alertEmail", "is not an e-mail address"],

  // --- monitoring ---
  ["logRetentionDays CloudWatch does not accept", set({ logRetentionDays: 45 }), "logRetentionDays", "must be one of 1, 3, 5, 7, 14, 30, 60, 90,"],
  ["logRetentionDays between two accepted ones", set({ logRetentionDays: 45 }), "logRetentionDays", "the nearest is 30"],
  ["logRetentionDays as a string", set({ logRetentionDays: "30" }), "logRetentionDays", 'must be a number, not the string "30"'],
  ["waitUntilHealthyMinutes past four hours", set({ waitUntilHealthyMinutes: 300 }), "waitUntilHealthyMinutes", "must be at most 240"],
  ["waitUntilHealthyMinutes as a fraction", set({ waitUntilHealthyMinutes: 1.5 }), "waitUntilHealthyMinutes", "integer"],
  ["healthCheckSkip with an option, not an id", set({ healthCheckSkip: ["--all"] }), "healthCheckSkip[0]", '"--all" must be a check id or its prefix, like port:25 or dnsbl'],
  ["healthCheckSkip as one string", set({ healthCheckSkip: "port:25" }), "healthCheckSkip", "must be a list"],

  // --- Amazon SES ---
  ["sesOutbound as a string", set({ sesOutbound: "yes" }), "sesOutbound", 'must be a boolean, not the string "yes"'],
  ["sesRegion with a zone letter", set({ sesOutbound: true, sesRegion: "eu-west-1a" }), "sesRegion", "without the zone letter"],
  ["sesRegion where SES does not receive", set({ sesInbound: true, sesRegion: "eu-north-1" }), "sesRegion", "SES does not receive mail in eu-north-1 (sesRegion)"],
  ["sesMailFromSubdomain of two labels", set({ sesOutbound: true, sesRegion: "eu-west-1", sesMailFromSubdomain: "mail.from" }), "sesMailFromSubdomain", "must be one DNS label"],
  ["sesOutbound with forwarding", set({ sesOutbound: true, sesRegion: "eu-west-1", allowExternalForwarding: true }), "sesOutbound", "cannot carry forwarded mail"],
  ["unknown alarm", set({ alertEmail: "ops@example.net", alarms: { backupAg: false } }), "alarms.backupAg", 'is not a known field. Did you mean "backupAge"?'],
  ["misspelt threshold key", set({ alertEmail: "ops@example.net", alarms: { backupAge: { treshold: 50 } } }), "alarms.backupAge.treshold", 'Did you mean "threshold"?'],
  ["certificate threshold at renewal time", set({ alertEmail: "ops@example.net", alarms: { certificateExpiry: { threshold: 30 } } }), "alarms.certificateExpiry.threshold", "must be a whole number from 1 to 29, not 30"],
  ["data volume threshold over 100%", set({ alertEmail: "ops@example.net", alarms: { dataVolumeFull: { threshold: 120 } } }), "alarms.dataVolumeFull.threshold", "must be a number from 1 to 99, not 120"],
  ["threshold as a string", set({ alertEmail: "ops@example.net", alarms: { backupAge: { threshold: "50" } } }), "alarms.backupAge.threshold", 'must be a number from 1 to 8760, not "50"'],
  ["threshold of an alarm that has one", set({ alertEmail: "ops@example.net", alarms: { hostSilent: { threshold: 2 } } }), "alarms.hostSilent.threshold", "can only be 1, not 2 (this alarm has no other threshold; write false to turn it off)"],
  ["alarm turned off by a word", set({ alertEmail: "ops@example.net", alarms: { rejectedMail: "off" } }), "alarms.rejectedMail", 'must be false (off), true (on, the default) or { threshold: N }, not the string "off"'],
  ["alarms as a list", set({ alertEmail: "ops@example.net", alarms: ["backupAge"] }), "alarms", "must be an object of alarm settings, not a list"],
  ["alarms without alertEmail", set({ alarms: { rejectedMail: false } }), "alarms", "changes alarms that exist only with alertEmail"],

  // --- admin CIDRs ---
  ["adminCidrs 0.0.0.0/0", set({ adminCidrs: ["0.0.0.0/0"] }), "adminCidrs[0]", "opens SSH to the whole internet"],
  ["adminCidrs ::/0", set({ adminCidrs: ["203.0.113.7/32", "::/0"] }), "adminCidrs[1]", "whole internet"],
  ["IPv4 CIDR with host bits set", set({ adminCidrs: ["10.1.2.3/8"] }), "adminCidrs[0]", "has host bits set; did you mean 10.0.0.0/8?"],
  ["IPv6 CIDR with host bits set", set({ adminCidrs: ["2001:db8::1/48"] }), "adminCidrs[0]", "did you mean 2001:db8::/48?"],
  ["address without prefix length", set({ adminCidrs: ["203.0.113.7"] }), "adminCidrs[0]", "is not a CIDR block"],
  ["prefix length over 32", set({ adminCidrs: ["10.0.0.0/33"] }), "adminCidrs[0]", "is not a CIDR block"],
  ["name instead of a CIDR", set({ adminCidrs: ["10.0.0.0/8", "office.example.com/32"] }), "adminCidrs[1]", "write e.g. 203.0.113.7/32"],
  ["adminCidrs as a string", set({ adminCidrs: "10.0.0.0/8" }), "adminCidrs", "must be a list, not the string"],

  // --- instance ---
  ["instance type of an unknown family", set({ instanceType: "zz9.large" }), "instanceType", 'instance family "zz9" is not in mailstack\'s architecture table; set architecture'],
  ["instance type t4g.micro", set({ instanceType: "t4g.micro" }), "instanceType", "under 2 GiB of memory"],
  ["instance type t3.nano", set({ instanceType: "t3.nano" }), "instanceType", "under 2 GiB of memory"],
  ["architecture contradicting the family", set({ instanceType: "t4g.small", architecture: "x86_64" }), "instanceType", "is arm64, but architecture says x86_64"],
  ["x86 family with arm64", set({ instanceType: "m7i.large", architecture: "arm64" }), "instanceType", "is x86_64, but architecture says arm64"],
  ["instance type without size", set({ instanceType: "large" }), "instanceType", "is not an EC2 instance type; write it as family.size"],
  ["unknown architecture", set({ instanceType: "zz9.large", architecture: "sparc" }), "architecture", 'must be one of "arm64", "x86_64"'],
  ["instance size typo t4g.smal", set({ instanceType: "t4g.smal" }), "instanceType", 'EC2 has no size "smal"; did you mean t4g.small?'],
  ["instance size typo m7g.xlarg", set({ instanceType: "m7g.xlarg" }), "instanceType", "did you mean m7g.xlarge?"],
  ["instance size EC2 does not have", set({ instanceType: "t3.huge" }), "instanceType", 'is not an EC2 instance type: EC2 has no size "huge"; sizes are nano, micro'],
  ["rootVolumeGiB below 8", set({ rootVolumeGiB: 4 }), "rootVolumeGiB", "must be at least 8"],
  ["non-integer dataVolumeGiB", set({ dataVolumeGiB: 20.5 }), "dataVolumeGiB", "must be an integer, not number 20.5"],
  ["dataVolumeGiB as a string", set({ dataVolumeGiB: "20" }), "dataVolumeGiB", 'must be a number, not the string "20"'],
  ["messageSizeLimitMiB of 0", set({ messageSizeLimitMiB: 0 }), "messageSizeLimitMiB", "must be at least 1"],
  ["backupRetentionDays over ten years", set({ backupRetentionDays: 5000 }), "backupRetentionDays", "must be at most 3650"],
  ["snapshotRetentionDays of 0", set({ snapshotRetentionDays: 0 }), "snapshotRetentionDays", "must be at least 1"],
  ["snapshotRetentionDays over a year", set({ snapshotRetentionDays: 400 }), "snapshotRetentionDays", "must be at most 365"],

  // --- backups ---
  ["Object Lock longer than the retention", set({ backupRetentionDays: 30, backupObjectLock: { mode: "GOVERNANCE", days: 31 } }), "backupObjectLock.days", "set backupRetentionDays to at least 31 or shorten the lock"],
  ["Object Lock longer than the default retention", set({ backupObjectLock: { mode: "COMPLIANCE", days: 91 } }), "backupObjectLock.days", "longer than backupRetentionDays (90)"],
  ["Object Lock mode in lower case", set({ backupObjectLock: { mode: "governance", days: 7 } }), "backupObjectLock.mode", 'must be one of "GOVERNANCE", "COMPLIANCE"'],
  ["Object Lock without days", set({ backupObjectLock: { mode: "GOVERNANCE" } }), "backupObjectLock.days", "is required"],
  ["Object Lock of 0 days", set({ backupObjectLock: { mode: "GOVERNANCE", days: 0 } }), "backupObjectLock.days", "must be at least 1"],
  ["Object Lock with a misspelt key", set({ backupObjectLock: { mode: "GOVERNANCE", days: 7, day: 7 } }), "backupObjectLock.day", 'Did you mean "days"?'],
  ["Object Lock as a string", set({ backupObjectLock: "GOVERNANCE" }), "backupObjectLock", "must be an object"],
  ["replica region as a zone", set({ backupReplicaRegion: "eu-central-1a" }), "backupReplicaRegion", "is not an AWS region; write it like eu-central-1"],
  ["replica region by its display name", set({ backupReplicaRegion: "Frankfurt" }), "backupReplicaRegion", "is not an AWS region"],
  ["replica region without its number", set({ backupReplicaRegion: "us-east" }), "backupReplicaRegion", '"us-east" is not an AWS region; did you mean us-east-1?'],
  ["replica region misspelt", set({ backupReplicaRegion: "eu-centrl-1" }), "backupReplicaRegion", "did you mean eu-central-1?"],
  ["KMS key given by alias", set({ backupKmsKeyArn: "arn:aws:kms:us-east-1:123456789012:alias/backups" }), "backupKmsKeyArn", "(a key, not an alias)"],
  ["KMS key id without ARN", set({ backupKmsKeyArn: "1234abcd-12ab-34cd-56ef-1234567890ab" }), "backupKmsKeyArn", "is not a KMS key ARN"],
  ["KMS key ARN as a number", set({ backupKmsKeyArn: 42 }), "backupKmsKeyArn", "must be a string, not number 42"],
  ["backupSchedule with a newline", set({ backupSchedule: "daily\nExecStart=/bin/sh" }), "backupSchedule", "is not a systemd OnCalendar expression"],
  ["backupSchedule empty", set({ backupSchedule: "" }), "backupSchedule", 'write e.g. "*-*-* 02:00:00" or daily'],
  ["backupSchedule as a number", set({ backupSchedule: 3 }), "backupSchedule", "must be a string, not number 3"],
  ["backupSchedule as cron", set({ backupSchedule: "0 2 * * *" }), "backupSchedule", '"0 2 * * *" looks like a cron expression; systemd writes it as *-*-* 02:00:00'],
  ["backupSchedule as a cron step", set({ backupSchedule: "*/30 * * * 1-5" }), "backupSchedule", "systemd writes it as Mon..Fri *-*-* *:00/30:00"],
  ["backupSchedule as a cron macro", set({ backupSchedule: "@daily" }), "backupSchedule", "looks like a cron macro; systemd writes it as daily"],
  ["backupSchedule at hour 25", set({ backupSchedule: "*-*-* 25:00" }), "backupSchedule", "is not a systemd OnCalendar expression: hour 25 is outside 0–23"],
  ["backupSchedule with a weekday typo", set({ backupSchedule: "Mond *-*-* 02:00" }), "backupSchedule", '"Mond" is not a weekday'],
  ["backupSchedule with a cron-style step", set({ backupSchedule: "*-*-* */2:00" }), "backupSchedule", "is not a systemd OnCalendar expression ([weekdays] [year-month-day] [hour:minute[:second]] [UTC])"],
  ["backupSchedule in another time zone", set({ backupSchedule: "*-*-* 02:00 Europe/Berlin" }), "backupSchedule", "names the time zone Europe/Berlin, but the host's clock runs on UTC"],
  ["backupKeep keeping nothing", set({ backupKeep: { daily: 0, weekly: 0, monthly: 0 } }), "backupKeep", "keeps no snapshot at all"],
  ["backupKeep negative", set({ backupKeep: { daily: -1 } }), "backupKeep.daily", "must be at least 0"],
  ["backupKeep fractional", set({ backupKeep: { monthly: 1.5 } }), "backupKeep.monthly", "must be an integer"],
  ["backupKeep unknown period", set({ backupKeep: { hourly: 24 } }), "backupKeep.hourly", 'is not a known field. Known fields: daily, weekly, monthly'],
  ["backupKeep typo", set({ backupKeep: { dayly: 3 } }), "backupKeep.dayly", 'Did you mean "daily"?'],
  ["sendingLimits zero", set({ sendingLimits: { messagesPerHour: 0 } }), "sendingLimits.messagesPerHour", "must be at least 1"],
  ["sendingLimits above SMTP's reason", set({ sendingLimits: { recipientsPerMessage: 5000 } }), "sendingLimits.recipientsPerMessage", "must be at most 1000"],
  ["sendingLimits fractional", set({ sendingLimits: { recipientsPerHour: 2.5 } }), "sendingLimits.recipientsPerHour", "must be an integer"],
  ["sendingLimits typo", set({ sendingLimits: { messagesPerDay: 3 } }), "sendingLimits.messagesPerDay", "is not a known field"],
  ["a mailbox's sendingLimits zero", mailbox({ password: PASSWORD, sendingLimits: { messagesPerHour: 0 } }), "mailboxes[0].sendingLimits.messagesPerHour", "must be at least 1"],
  ["a mailbox's sendingLimits above the stack's bound", mailbox({ password: PASSWORD, sendingLimits: { recipientsPerHour: 100001 } }), "mailboxes[0].sendingLimits.recipientsPerHour", "must be at most 100000"],
  ["a mailbox's sendingLimits fractional", mailbox({ password: PASSWORD, sendingLimits: { messagesPerHour: 1.5 } }), "mailboxes[0].sendingLimits.messagesPerHour", "must be an integer"],
  ["a mailbox's sendingLimits as a string", mailbox({ password: PASSWORD, sendingLimits: { messagesPerHour: "500" } }), "mailboxes[0].sendingLimits.messagesPerHour", 'must be a number, not the string "500"'],
  ["a mailbox's sendingLimits as a number", mailbox({ password: PASSWORD, sendingLimits: 500 }), "mailboxes[0].sendingLimits", "must be an object, not number 500"],
  ["a mailbox's sendingLimits typo", mailbox({ password: PASSWORD, sendingLimits: { messagesPerHr: 500 } }), "mailboxes[0].sendingLimits.messagesPerHr", 'Did you mean "messagesPerHour"?'],
  [
    "a mailbox's own recipientsPerMessage (Postfix's limit is one for the host)",
    mailbox({ password: PASSWORD, sendingLimits: { messagesPerHour: 500, recipientsPerMessage: 500 } }),
    "mailboxes[0].sendingLimits.recipientsPerMessage",
    "cannot differ per mailbox: it is Postfix's smtpd_recipient_limit, one setting for the whole host; remove it here and set sendingLimits.recipientsPerMessage (now 100) instead",
  ],
  ["dkimSelector with upper case and underscore", set({ dkimSelector: "Mail_2024" }), "dkimSelector", "must be one DNS label"],
  ["outboundTls typo", set({ outboundTls: "must" }), "outboundTls", 'must be one of "dane", "opportunistic", "required"'],
  ["pop3 as a string", set({ pop3: "yes" }), "pop3", 'must be a boolean, not the string "yes"'],

  // --- network ---
  ["vpcId without subnetId", set({ vpcId: "vpc-0123456789abcdef0" }), "subnetId", "is required when vpcId is set"],
  ["subnetId with availabilityZone", set({ subnetId: "subnet-0123456789abcdef0", availabilityZone: "us-east-1a" }), "availabilityZone", "conflicts with subnetId"],
  ["malformed subnetId", set({ vpcId: "vpc-0123456789abcdef0", subnetId: "subnet-xyz" }), "subnetId", '"subnet-xyz" must look like subnet-0123456789abcdef0'],
  ["malformed vpcId", set({ vpcId: "vpc-12", subnetId: "subnet-0123456789abcdef0" }), "vpcId", "must look like vpc-0123456789abcdef0"],
  ["subnetId as a number", set({ subnetId: 42 }), "subnetId", "must be a string, not number 42"],
  ["subnetId null", set({ subnetId: null }), "subnetId", "must be a string, not null"],
  ["malformed availabilityZone", set({ availabilityZone: "useast1a" }), "availabilityZone", "must look like us-east-1a"],
  ["availabilityZone of a misspelt region", set({ availabilityZone: "us-esat-1b" }), "availabilityZone", "did you mean us-east-1b?"],
  ["availabilityZone without its letter", set({ availabilityZone: "eu-west-1" }), "availabilityZone", '"eu-west-1" must look like us-east-1a (a region and a zone letter)'],

  // --- structure ---
  ["unknown top-level key mailbox", { domain: "example.com", mailbox: base().mailboxes }, "mailbox", 'is not a known field. Did you mean "mailboxes"?'],
  ["unknown top-level key hostName", set({ hostName: "mail.example.com" }), "hostName", 'Did you mean "hostname"?'],
  ["unknown top-level key far from any field", set({ colour: "blue" }), "colour", "is not a known field. Known fields: domain, extraDomains"],
  ["unknown key inside a mailbox", mailbox({ password: PASSWORD, quoat: "5G" }), "mailboxes[0].quoat", 'Did you mean "quota"? Known fields: address, password, passwordHash, quota, aliases, sendingLimits'],
  ["unknown key inside an alias", withAliases({ address: "info@example.com", too: ["alice@example.com"] } as never), "aliases[0].too", 'Did you mean "to"?'],
  ["domain as a number", set({ domain: 42 }), "domain", "must be a string, not number 42"],
  ["domain missing", { mailboxes: base().mailboxes }, "domain", "is required"],
  ["mailboxes not a list", set({ mailboxes: "alice@example.com" }), "mailboxes", 'must be a list, not the string "alice@example.com"'],
  ["mailboxes as an object", set({ mailboxes: { address: "alice@example.com" } }), "mailboxes", "must be a list, not an object"],
  ["mailbox that is a string", set({ mailboxes: ["alice@example.com"] }), "mailboxes[0]", "must be an object"],
  ["mailbox address missing", mailbox({ address: undefined, password: PASSWORD }), "mailboxes[0].address", "is required"],
  ["empty mailboxes list", set({ mailboxes: [] }), "mailboxes", "is empty; add at least one mailbox"],
  ["alias targets as a string", withAliases({ address: "info@example.com", to: "alice@example.com" } as never), "aliases[0].to", "must be a list"],
  ["config that is not an object", null, "", "must be an object, not null"],
  ["config that is a list", [], "", "must be an object, not a list"],

  // --- Cloudflare ---
  ["cloudflareZoneIds key that is not a mail domain", set({ cloudflareZoneIds: { "example.net": "0123456789abcdef0123456789abcdef" } }), "cloudflareZoneIds.example.net", "is neither a mail domain (example.com) nor in nonMailDomains"],
  ["cloudflareZoneIds key that is not a domain", set({ cloudflareZoneIds: { "my zone": "0123456789abcdef0123456789abcdef" } }), "cloudflareZoneIds.my zone", "is not a domain name"],
  ["bad Cloudflare zone id", set({ cloudflareZoneIds: { "example.com": "not-a-zone-id" } }), "cloudflareZoneIds.example.com", "must be a 32-character hex zone id"],
  ["Route 53 zone ids with Cloudflare", set({ route53ZoneIds: { "example.com": "Z0123456789ABCDEFGHIJ" } }), "route53ZoneIds", 'does not apply with dnsProvider cloudflare; remove it or set dnsProvider: "route53"'],
  ["Cloudflare zone ids with Route 53", set({ dnsProvider: "route53", cloudflareZoneIds: { "example.com": "0123456789abcdef0123456789abcdef" } }), "cloudflareZoneIds", "does not apply with dnsProvider route53"],
  ["malformed Route 53 zone id", set({ dnsProvider: "route53", route53ZoneIds: { "example.com": "zone-1" } }), "route53ZoneIds.example.com", "must be a Route 53 hosted zone id"],
  ["unknown DNS provider", set({ dnsProvider: "gandi" }), "dnsProvider", 'must be one of "cloudflare", "route53"'],
  ["DNSSEC with Route 53", set({ dnsProvider: "route53", dnssec: true }), "dnssec", "is only managed on Cloudflare"],

  // --- DNS records ---
  ["next DKIM selector equal to the signing one", set({ dkimNextSelector: "mail" }), "dkimNextSelector", '"mail" is already published'],
  ["previous DKIM selector equal to the next", set({ dkimNextSelector: "b", dkimPreviousSelector: "b" }), "dkimPreviousSelector", '"b" is already published (dkimSelector or dkimNextSelector)'],
  ["DKIM next selector with an underscore", set({ dkimNextSelector: "s_2" }), "dkimNextSelector", "must be one DNS label"],
  ["secondary MX before the host", set({ secondaryMx: [{ host: "mx2.example.net", priority: 5 }] }), "secondaryMx[0].priority", "would put it before this host (10); use a number above 10"],
  ["secondary MX that is the host", set({ secondaryMx: [{ host: "mail.example.com" }] }), "secondaryMx[0].host", "is already an MX host"],
  ["secondary MX host that is an address", set({ secondaryMx: [{ host: "192.0.2.1" }] }), "secondaryMx[0].host", "IP addresses are not domains"],
  ["unknown key in a secondary MX", set({ secondaryMx: [{ host: "mx2.example.net", priorty: 20 }] }), "secondaryMx[0].priorty", 'Did you mean "priority"?'],
  ["SPF include that is a mechanism", set({ spfInclude: ["ip4:192.0.2.1"] }), "spfInclude[0]", "is not a domain name"],
  ["ten SPF includes", set({ spfInclude: Array.from({ length: 10 }, (_, i) => `s${i}.example.net`) }), "spfInclude", "SPF allows 10 DNS lookups"],
  ["MTA-STS mode typo", set({ mtaSts: "enforcing" }), "mtaSts", 'must be one of "enforce", "testing", "none"'],
  ["CAA without Let's Encrypt", set({ caaIssuers: ["sectigo.com"] }), "caaIssuers", "leaves out letsencrypt.org"],
  ["non-mail domain that receives mail", set({ nonMailDomains: ["example.com"] }), "nonMailDomains[0]", "receives or sends mail here"],
  ["non-mail domain listed twice", set({ nonMailDomains: ["example.net", "EXAMPLE.net"] }), "nonMailDomains[1]", "is listed twice"],
  ["verification record for an unmanaged domain", set({ verificationRecords: { "example.net": ["MS=ms1"] } }), "verificationRecords.example.net", "is neither a mail domain nor in nonMailDomains"],
  ["verification value with a newline", set({ verificationRecords: { "example.com": ["MS=\nms1"] } }), "verificationRecords.example.com[0]", "printable ASCII"],
  ["dnssec as a string", set({ dnssec: "yes" }), "dnssec", 'must be a boolean, not the string "yes"'],
  ["upper-case Cloudflare zone id", set({ cloudflareZoneIds: { "example.com": "0123456789ABCDEF0123456789ABCDEF" } }), "cloudflareZoneIds.example.com", "32-character hex zone id"],

  // --- LDAP ---
  ["LDAP URL without TLS", ldap({ url: "ldap://ldap.example.com" }), "ldap.url", "is plain LDAP, which would carry the bind password and every user's password in clear; write ldaps://ldap.example.com (port 636), or keep it and set ldap.startTls: true"],
  ["LDAP URL with a path (the search base)", ldap({ url: "ldaps://ldap.example.com/dc=example,dc=com" }), "ldap.url", "has a path, query or fragment; name only the server, e.g. ldaps://ldap.example.com"],
  ["LDAP URL with a query", ldap({ url: "ldaps://ldap.example.com:636?mail?sub" }), "ldap.url", "has a path, query or fragment"],
  ["LDAP URL of another scheme", ldap({ url: "https://ldap.example.com" }), "ldap.url", "has the scheme https; only ldaps://host[:port]"],
  ["LDAP URL with a port out of range", ldap({ url: "ldaps://ldap.example.com:70000" }), "ldap.url", "does not name a server as host or host:port"],
  ["StartTLS on an ldaps URL", ldap({ startTls: true }), "ldap.startTls", "is for ldap:// URLs"],
  ["LDAP filter without the %u placeholder", ldap({ userFilter: "(objectClass=inetOrgPerson)" }), "ldap.userFilter", "has no %u placeholder"],
  ["LDAP filter with unbalanced parentheses", ldap({ userFilter: "(&(objectClass=inetOrgPerson)(mail=%u)" }), "ldap.userFilter", 'has unbalanced parentheses (3 "(" and 2 ")")'],
  ["LDAP filter without parentheses", ldap({ userFilter: "mail=%u" }), "ldap.userFilter", 'is not an LDAP filter (RFC 4515): "(" expected at character 1'],
  ["LDAP filter with Postfix's placeholder", ldap({ userFilter: "(mail=%s)" }), "ldap.userFilter", 'holds "%s", which is no placeholder here; use %u (the address)'],
  ["empty LDAP base DN", ldap({ baseDn: "" }), "ldap.baseDn", "is empty; write it like cn=mail,ou=services,dc=example,dc=com"],
  ["LDAP bind DN that is no DN", ldap({ bindDn: "mailuser" }), "ldap.bindDn", 'is not a DN: "=" is missing after mailuser'],
  ["LDAP bind DN without its password", ldap({ bindPassword: undefined }), "ldap.bindPassword", "is required with bindDn"],
  ["LDAP bind password of two lines", ldap({ bindPassword: "first\nsecond" }), "ldap.bindPassword", "holds a line break"],
  ["LDAP CA certificate that is not PEM", ldap({ caCertificate: "MIIBgjCCASmgAwIBAgIU" }), "ldap.caCertificate", "is not a PEM certificate: line 1 is not -----BEGIN CERTIFICATE-----"],
  ["LDAP CA certificate that is a private key", ldap({ caCertificate: "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n" }), "ldap.caCertificate", "is a private key"],
  ["LDAP users in a domain not hosted", ldap({ domains: ["example.net"] }), "ldap.domains[0]", '"example.net" is not a hosted domain (example.com); directory users receive and log in here only in domains this server hosts'],
  ["LDAP domain with a catch-all", { ...ldap({}), catchAll: { "example.com": "alice@example.com" } }, "ldap.domains", "includes example.com, which has a catch-all"],
  ["LDAP cache lifetime zero", ldap({ cacheSeconds: 0 }), "ldap.cacheSeconds", "must be at least 1"],
  ["LDAP cache lifetime over a day", ldap({ cacheSeconds: 86401 }), "ldap.cacheSeconds", "must be at most 86400"],
  ["unknown LDAP flavor", ldap({ flavor: "freeipa" }), "ldap.flavor", 'must be one of "openldap", "activedirectory"'],
  ["LDAP mail attribute that is no attribute", ldap({ mailAttribute: "mail address" }), "ldap.mailAttribute", "is not an attribute name"],
  ["unknown key in the LDAP block", ldap({ bindPw: "x" }), "ldap.bindPw", 'Did you mean "bindDn"?'],
];

describe("parseConfig refuses invalid configurations", () => {
  test("the table has many distinct cases", () => {
    expect(cases.length).toBeGreaterThanOrEqual(35);
    expect(new Set(cases.map((c) => c[0])).size).toBe(cases.length);
  });

  test.each(cases)("%s", (_title, input, path, phrase) => {
    const issues = issuesOf(input);
    const atPath = issues.filter((i) => i.path === path);
    if (atPath.length === 0) throw new Error(`no issue at ${JSON.stringify(path)}; got ${JSON.stringify(issues, null, 1)}`);
    expect(atPath.map((i) => i.message)).toEqual(expect.arrayContaining([expect.stringContaining(phrase)]));
  });
});

const KEY = (region: string) => `arn:aws:kms:${region}:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
const regionCases: [title: string, input: unknown, region: string, path: string, phrase: string][] = [
  ["stack region without its number", base(), "us-east", "aws:region", '"us-east" is not an AWS region; did you mean us-east-1?'],
  ["stack region by its display name", base(), "Ireland", "aws:region", '"Ireland" is not an AWS region; write it like eu-central-1'],
  ["stack region given as a zone", base(), "eu-west-1a", "aws:region", "write it like eu-west-1, without the zone letter"],
  ["availabilityZone of another region", set({ availabilityZone: "eu-central-1b" }), "us-east-1", "availabilityZone", '"eu-central-1b" is a zone of eu-central-1, but the stack deploys to us-east-1 (aws:region)'],
  ["replica in the stack's region", set({ backupReplicaRegion: "eu-west-1" }), "eu-west-1", "backupReplicaRegion", "is the stack's own region, so the replica would not survive losing it"],
  ["KMS key of another region", set({ backupKmsKeyArn: KEY("eu-west-1") }), "us-east-1", "backupKmsKeyArn", "is a key in eu-west-1, but the bucket is in us-east-1"],
];

describe("parseConfig refuses what the stack's region rules out", () => {
  test.each(regionCases)("%s", (_title, input, region, path, phrase) => {
    const issues = issuesOf(input, { region });
    expect(issues.filter((i) => i.path === path).map((i) => i.message)).toEqual(expect.arrayContaining([expect.stringContaining(phrase)]));
  });

  test("a bad stack region leaves the zone, replica and key unchecked rather than checked against it", () => {
    const issues = issuesOf(set({ availabilityZone: "eu-central-1b", backupReplicaRegion: "us-east-1", backupKmsKeyArn: KEY("eu-west-1") }), { region: "us-east" });
    expect(issues.map((i) => i.path)).toEqual(["aws:region"]);
  });
});

describe("one ConfigError reports every problem", () => {
  test("independent semantic problems are all listed", () => {
    const input: MailConfigInput = {
      domain: "example.com",
      hostname: "mail.example.net",
      mailboxes: [
        { address: "alice@example.com", password: "short" },
        { address: "bob@example.com", passwordHash: "{PLAIN}secret" },
        { address: "carol@example.org", password: PASSWORD },
      ],
      aliases: [{ address: "info@example.com", to: ["dave@example.com"] }],
      adminCidrs: ["0.0.0.0/0", "10.0.0.1/8"],
      instanceType: "t4g.micro",
      rootVolumeGiB: 16,
      vpcId: "vpc-0123456789abcdef0",
    };
    const issues = issuesOf(input);
    expect(issues.map((i) => i.path).sort()).toEqual(
      [
        "hostname",
        "mailboxes[0].password",
        "mailboxes[1].passwordHash",
        "mailboxes[2].address",
        "aliases[0].to[0]",
        "adminCidrs[0]",
        "adminCidrs[1]",
        "instanceType",
        "subnetId",
      ].sort(),
    );
    expect(issues).toHaveLength(9);
  });

  test("every unknown key is reported, each at its own path", () => {
    const issues = issuesOf({ ...minimalConfig(), dkimSelctor: "x", popp3: true, mailboxes: [{ ...minimalConfig().mailboxes[0], quoat: "1G", alias: [] }] });
    expect(issues.map((i) => i.path).sort()).toEqual(["dkimSelctor", "mailboxes[0].alias", "mailboxes[0].quoat", "popp3"]);
    expect(issues.find((i) => i.path === "popp3")?.message).toContain('Did you mean "pop3"?');
    expect(issues.find((i) => i.path === "mailboxes[0].alias")?.message).toContain('Did you mean "aliases"?');
  });

  test("independent shape problems are all listed", () => {
    const issues = issuesOf({
      domain: 7,
      mailboxes: [{ address: "alice@example.com", password: PASSWORD, colour: "red" }],
      pop3: "yes",
      dmarcPolicy: "strict",
      rootVolumeGiB: 2,
      mailbox: [],
    });
    expect(issues.map((i) => i.path).sort()).toEqual(["mailbox", "dmarcPolicy", "domain", "mailboxes[0].colour", "pop3", "rootVolumeGiB"].sort());
    expect(issues).toHaveLength(6);
  });

  test("the error message counts and lists the problems", () => {
    let error: unknown;
    try {
      parseConfig({ ...fullConfig(), dmarcPolicy: "strict", pop3: 1 });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).toMatch(/^invalid mailstack configuration \(2 problems\):\n/);
    expect(message).toContain("  dmarcPolicy: must be one of");
    expect(message).toContain("  pop3: must be a boolean, not number 1");
  });

  test("an issue without a path is shown as (config)", () => {
    const error = new ConfigError([{ path: "", message: "must be an object" }]);
    expect(error.message).toBe("invalid mailstack configuration (1 problem):\n  (config): must be an object");
  });
});

describe("secrets never appear in error messages", () => {
  test("a rejected password is not echoed", () => {
    const secret = "alice-is-my-secret-phrase";
    const issues = issuesOf(mailbox({ password: secret }));
    expect(JSON.stringify(issues)).not.toContain(secret);
  });

  test("a rejected password hash is not echoed", () => {
    const secret = "{PLAIN}hunter2-hunter2";
    const issues = issuesOf(mailbox({ passwordHash: secret }));
    expect(JSON.stringify(issues)).not.toContain("hunter2");
  });
});
