import type { MailConfigInput } from "@mailstack/core";

/** A valid bcrypt hash (of "not a real password: mailstack plan") for mailboxes given by hash. */
export const SAMPLE_HASH = "{BLF-CRYPT}$2b$10$ZUDnZFLyWULpJV/qWU2rc.XEThdZxhIbbWJepiA4ZKNDAB1Lb56sW";

/** The smallest valid configuration. */
export function minimalConfig(): MailConfigInput {
  return {
    domain: "example.com",
    mailboxes: [{ address: "alice@example.com", password: "correct horse battery staple" }],
  };
}

/** Two domains, mailbox aliases, a group alias, a pre-hashed password and POP3. */
export function fullConfig(): MailConfigInput {
  return {
    domain: "example.com",
    extraDomains: ["example.org"],
    mailboxes: [
      { address: "alice@example.com", password: "correct horse battery staple", quota: "10G", aliases: ["alice@example.org"] },
      { address: "bob@example.com", passwordHash: SAMPLE_HASH, quota: "unlimited" },
    ],
    aliases: [
      { address: "info@example.com", to: ["alice@example.com", "bob@example.com"] },
      { address: "dmarc@example.com", to: ["alice@example.com"] },
    ],
    dmarcReports: "dmarc@example.com",
    adminCidrs: ["203.0.113.0/24"],
    pop3: true,
    alertEmail: "ops@example.net",
  };
}
