import { catchAllPerDomain } from "../../../packages/core/src/config/rules/catch-all-per-domain";
import { check, lines, PASSWORD } from "./check";

const mailboxes = [
  { address: "alice@example.com", password: PASSWORD },
  { address: "carol@example.com", password: PASSWORD, enabled: false },
];

test("fills one catch-all per hosted domain, normalised, to a mailbox, an alias or a role address", () => {
  const { issues, ctx } = check(catchAllPerDomain, {
    extraDomains: ["example.org", "bücher.example"],
    mailboxes,
    aliases: [{ address: "info@example.org", to: ["alice@example.com", "carol@example.com"] }],
    catchAll: { "Example.COM": "ALICE@example.com", "example.org": "info@example.org", "bücher.example": "postmaster@example.com" },
  });
  expect(issues).toEqual([]);
  expect(ctx.catchAll).toEqual([
    { domain: "example.com", to: "alice@example.com" },
    { domain: "example.org", to: "info@example.org" },
    { domain: "xn--bcher-kva.example", to: "postmaster@example.com" },
  ]);
});

test("refuses a domain that is not hosted, the host name, and a second catch-all for one domain", () => {
  expect(lines(catchAllPerDomain, { mailboxes, catchAll: { "example.net": "alice@example.com", "mail.example.com": "alice@example.com", "example.com": "alice@example.com", "EXAMPLE.com.": "alice@example.com", "exa mple.com": "alice@example.com" } })).toEqual([
    'catchAll.example.net: "example.net" is not a hosted domain (example.com); a catch-all takes the unknown addresses of a domain this server receives for: add it to extraDomains or remove the entry',
    'catchAll.mail.example.com: "mail.example.com" is not a hosted domain (example.com); a catch-all takes the unknown addresses of a domain this server receives for: add it to extraDomains or remove the entry',
    "catchAll.EXAMPLE.com.: is example.com again, as catchAll.example.com is; a domain has one catch-all: keep one entry",
    expect.stringMatching(/^catchAll\.exa mple\.com: /),
  ]);
});

test("refuses a target outside, unknown, a domain, or reaching only disabled mailboxes", () => {
  expect(lines(catchAllPerDomain, { extraDomains: ["example.org", "example.net", "example.info"], mailboxes, allowExternalForwarding: true, catchAll: {
    "example.com": "carol@example.com",
    "example.org": "someone@gmail.com",
    "example.net": "nobody@example.com",
    "example.info": "@example.com",
  } })).toEqual([
    'catchAll.example.com: "carol@example.com" reaches only disabled mailboxes; name an enabled mailbox or alias, or remove the catch-all',
    'catchAll.example.org: "someone@gmail.com" is outside the hosted domains; a catch-all delivers here only (forwarded, it would pass on the spam of every guessed address): name a mailbox or alias',
    'catchAll.example.net: "nobody@example.com" is neither a mailbox nor an alias here; name one, or add it',
    'catchAll.example.info: "@example.com" is a domain; a catch-all delivers to one mailbox or alias, e.g. postmaster@example.info',
  ]);
  expect(lines(catchAllPerDomain, { mailboxes, catchAll: { "example.com": "not an address" } })).toEqual([expect.stringMatching(/^catchAll\.example\.com: /)]);
});
