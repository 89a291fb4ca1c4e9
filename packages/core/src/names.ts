import { domainToASCII, domainToUnicode } from "node:url";

/** The result of checking a name: the normalised value, or why it is wrong and what to do. */
export type Checked =
  | {
      /** The name is valid. */
      ok: true;
      /** Normalised: lower case, ASCII (IDNs in punycode), no trailing dot. */
      value: string;
    }
  | {
      /** The name is not valid. */
      ok: false;
      /** Why, and what to do. */
      error: string;
    };

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const SERVICE_LABEL = /^_[a-z0-9](?:[a-z0-9-]{0,60}[a-z0-9])?$/;

/**
 * Normalises a DNS domain name to lower-case ASCII (IDNs become their xn-- form) and checks
 * it is a name mail can be hosted under: at least two labels, LDH rules, lengths. With
 * `serviceLabels`, labels below the top one may start with "_" (RFC 8552), as in names that
 * are only looked up, never hosted, e.g. the SPF include `_spf.google.com`.
 */
export function checkDomain(raw: string, options: { serviceLabels?: boolean } = {}): Checked {
  const key = `${options.serviceLabels ? "_" : ""}${raw}`;
  let checked = checkedDomains.get(key);
  if (checked === undefined) {
    // A thousand mailboxes share a few domains; IDNA conversion is the costly part of each check.
    if (checkedDomains.size >= 1024) checkedDomains.clear();
    checked = Object.freeze(checkDomainOnce(raw, options));
    checkedDomains.set(key, checked);
  }
  return checked;
}
const checkedDomains = new Map<string, Checked>();

function checkDomainOnce(raw: string, options: { serviceLabels?: boolean }): Checked {
  const trimmed = raw.trim().replace(/\.$/, "");
  if (trimmed === "") return { ok: false, error: "is empty; give a domain such as example.com" };
  // Every ASCII character but letters, digits, "-", "." and "_" (refused per label below), before
  // domainToASCII sees it: that reads its input as a URL's host, which ends at "#", "?" or "\",
  // so "example.com#x" would pass as example.com and "exa#mple.com" as exa.
  if (/[^A-Za-z0-9._\-\u0080-\uffff]/.test(trimmed)) {
    return { ok: false, error: `"${raw}" is not a domain name: it may hold only letters, digits, "-" and "."; give a name such as example.com` };
  }
  const ascii = domainToASCII(trimmed);
  if (ascii === "") {
    return { ok: false, error: `"${raw}" is not a valid internationalised domain name; check its spelling or give its xn-- form` };
  }
  const labels = ascii.split(".");
  if (labels.length < 2) {
    return { ok: false, error: `"${raw}" has a single label; give a fully qualified name such as example.com` };
  }
  if (ascii.length > 253) return { ok: false, error: `"${raw}" is longer than 253 characters` };
  for (const [i, label] of labels.entries()) {
    if (label.length > 63) {
      return { ok: false, error: `"${raw}" has a label longer than 63 characters ("${label.slice(0, 20)}…")` };
    }
    if (!LABEL.test(label) && !(options.serviceLabels && i < labels.length - 1 && SERVICE_LABEL.test(label))) {
      return {
        ok: false,
        error: `"${raw}" has an invalid label "${label}"; labels use letters, digits and inner hyphens only`,
      };
    }
    if (label.startsWith("xn--") && domainToASCII(domainToUnicode(label)) !== label) {
      return { ok: false, error: `"${raw}" has a malformed punycode label "${label}"` };
    }
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1])) {
    return { ok: false, error: `"${raw}" ends in a numeric label; IP addresses are not domains` };
  }
  return { ok: true, value: ascii };
}

// Local parts are letters, digits, "." "_" and "-": every other dot-atom character means
// something in a file the address reaches. In a Postfix map "#" starts a comment, whitespace
// ends the key and "," separates targets; an alias target starting with "|" runs a command
// and one with "/" names a file to write; in the Dovecot passwd-file ":" separates fields;
// "/" adds a directory to the mailbox's home (<vmail>/<domain>/<local part>); "%" and "!"
// route mail (percent hack, bang paths); "$", "`", "'", "&" and ";" are shell syntax.
// Quoted local parts are refused for the same reason.
const LOCAL_PART = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;

/**
 * Normalises an e-mail address to lower case with an ASCII domain. Local parts are at most 64
 * lower-case letters, digits, ".", "_" and "-", with no leading, trailing or double dot, no
 * leading "-", and no "+", which Postfix treats as the sub-address delimiter.
 */
export function checkAddress(raw: string): Checked {
  const value = raw.trim();
  const at = value.lastIndexOf("@");
  if (at <= 0 || at === value.length - 1 || value.indexOf("@") !== at) {
    return { ok: false, error: `"${raw}" is not an e-mail address; write it as name@domain` };
  }
  const local = value.slice(0, at).toLowerCase();
  if (/[^\p{ASCII}]/u.test(local)) {
    return {
      ok: false,
      error: `"${raw}" has a non-ASCII local part, which needs SMTPUTF8 that many senders lack; use an ASCII name`,
    };
  }
  if (local.startsWith('"')) {
    return { ok: false, error: `"${raw}" has a quoted local part; use a plain name such as first.last` };
  }
  if (local.includes("+")) {
    return {
      ok: false,
      error: `"${raw}" contains "+", the sub-address delimiter (alice+tag@ already reaches alice@); remove it`,
    };
  }
  if (local.length > 64 || !LOCAL_PART.test(local)) {
    return {
      ok: false,
      error: `"${raw}" is not an e-mail address: the part before "@" must be letters, digits and . _ - (no leading, trailing or double dots)`,
    };
  }
  if (local.startsWith("-")) {
    // Postfix refuses such addresses (allow_min_user), and a program handed one reads an option.
    return { ok: false, error: `"${raw}" starts with "-", which Postfix refuses in an address; start it with a letter or digit` };
  }
  const domain = checkDomain(value.slice(at + 1));
  if (!domain.ok) return { ok: false, error: `"${raw}" has a bad domain: ${domain.error}` };
  return { ok: true, value: `${local}@${domain.value}` };
}

/** The domain part of an address: what follows its last `@`. */
export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf("@") + 1);
}

/** True when `name` is `zone` or a name below it. */
export function isWithin(name: string, zone: string): boolean {
  return name === zone || name.endsWith(`.${zone}`);
}
