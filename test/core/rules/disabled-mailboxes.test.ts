import { disabledMailboxes } from "../../../packages/core/src/config/rules/disabled-mailboxes";
import { lines, PASSWORD } from "./check";

const alice = { address: "alice@example.com", password: PASSWORD };
const carol = { address: "carol@example.com", password: PASSWORD, enabled: false, aliases: ["carol@example.org"] };

test("a disabled mailbox may be skipped by aliases that have other targets", () => {
  const aliases = [
    { address: "team@example.com", to: ["carol@example.com", "alice@example.com"] },
    { address: "all@example.com", to: ["team@example.com", "carol@example.org"] },
  ];
  expect(lines(disabledMailboxes, { extraDomains: ["example.org"], mailboxes: [alice, carol], aliases })).toEqual([]);
  // Outside targets deliver too.
  const outside = [{ address: "fwd@example.com", to: ["carol@example.com", "carol@example.net"] }];
  expect(lines(disabledMailboxes, { extraDomains: ["example.org"], mailboxes: [alice, carol], aliases: outside, allowExternalForwarding: true })).toEqual([]);
});

test("refuses an alias whose every target is disabled, directly, through the mailbox's own alias or another alias", () => {
  const aliases = [
    { address: "solo@example.com", to: ["carol@example.com"] },
    { address: "own@example.com", to: ["carol@example.org"] },
    { address: "deep@example.com", to: ["solo@example.com"] },
  ];
  expect(lines(disabledMailboxes, { extraDomains: ["example.org"], mailboxes: [alice, carol], aliases })).toEqual([
    "aliases[0].to: every target of solo@example.com is a disabled mailbox (carol@example.com), so its mail would bounce; add an enabled mailbox to it, or remove the alias",
    "aliases[1].to: every target of own@example.com is a disabled mailbox (carol@example.com), so its mail would bounce; add an enabled mailbox to it, or remove the alias",
    "aliases[2].to: every target of deep@example.com is a disabled mailbox (carol@example.com), so its mail would bounce; add an enabled mailbox to it, or remove the alias",
  ]);
});

test("the postmaster, abuse and report addresses must reach an enabled mailbox", () => {
  // The first mailbox is the postmaster unless postmaster is set: reported at its switch.
  expect(lines(disabledMailboxes, { mailboxes: [{ ...alice, enabled: false }, { address: "bob@example.com", password: PASSWORD }] })).toEqual([
    "mailboxes[0].enabled: alice@example.com is the postmaster (the first mailbox, as postmaster is not set) and postmaster@ of every domain must be read (RFC 5321); set postmaster to an enabled mailbox or alias, or keep this mailbox enabled",
  ]);
  expect(lines(disabledMailboxes, { mailboxes: [{ ...alice, enabled: false }, { address: "bob@example.com", password: PASSWORD }], postmaster: "bob@example.com" })).toEqual([]);
  const aliases = [{ address: "reports@example.com", to: ["carol@example.com"] }];
  expect(lines(disabledMailboxes, { extraDomains: ["example.org"], mailboxes: [alice, carol], aliases, postmaster: "carol@example.org", abuse: "carol@example.com", dmarcReports: "reports@example.com" })).toEqual([
    "aliases[0].to: every target of reports@example.com is a disabled mailbox (carol@example.com), so its mail would bounce; add an enabled mailbox to it, or remove the alias",
    'postmaster: "carol@example.org" reaches only disabled mailboxes (carol@example.com), but postmaster@ of every domain must be read (RFC 5321); name an enabled mailbox or alias',
    'abuse: "carol@example.com" reaches only disabled mailboxes (carol@example.com), but abuse@ of every domain must be read (RFC 2142); name an enabled mailbox or alias',
    'dmarcReports: "reports@example.com" reaches only disabled mailboxes (carol@example.com), but the DMARC aggregate reports would bounce; name an enabled mailbox or alias',
  ]);
});

test("a mailbox that is postmaster@ or abuse@ of a domain, or has such an alias, stays enabled", () => {
  const mailboxes = [
    alice,
    { address: "postmaster@example.org", password: PASSWORD, enabled: false },
    { address: "bob@example.com", password: PASSWORD, enabled: false, aliases: ["abuse@example.org"] },
  ];
  expect(lines(disabledMailboxes, { extraDomains: ["example.org"], mailboxes })).toEqual([
    "mailboxes[1].enabled: postmaster@example.org must receive mail (RFC 5321, RFC 2142) and is this mailbox; keep it enabled, or make postmaster@example.org an alias of an enabled mailbox",
    "mailboxes[2].enabled: abuse@example.org must receive mail (RFC 5321, RFC 2142) and is one of its aliases; keep it enabled, or make abuse@example.org an alias of an enabled mailbox",
  ]);
});

test("the reply is 1–200 printable ASCII characters, checked on enabled mailboxes too", () => {
  const reply = (disabledReply: string) => lines(disabledMailboxes, { mailboxes: [alice, { ...carol, aliases: [], disabledReply }] });
  const refused = ['mailboxes[1].disabledReply: must be 1–200 printable ASCII characters (no line breaks or tabs), e.g. "Alice has left; write to sales@example.com"'];
  for (const good of ["Carol has left; write to sales@example.com", "x", " padded ", "y".repeat(200), "<>{}$(id)`|#%"]) expect([good, reply(good)]).toEqual([good, []]);
  for (const bad of ["", "   ", "y".repeat(201), "two\nlines", "tab\there", "caf\u00e9", "\r"]) expect([bad, reply(bad)]).toEqual([bad, refused]);
  expect(lines(disabledMailboxes, { mailboxes: [{ ...alice, disabledReply: "a\nb" }] })).toEqual([refused[0].replace("[1]", "[0]")]);
});
