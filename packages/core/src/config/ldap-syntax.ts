import { X509Certificate } from "node:crypto";

// What the `ldap` block's strings must be on their own. Each finder returns the message that
// follows the field's path, with the fix, or undefined when the value is fine. The values end
// up in Dovecot's dovecot-ldap.conf.ext (quoted there, see ldap.ts) and in Postfix's ldap map
// (the rest of a line), so each is one line of printable ASCII whatever else it holds.

const PRINTABLE = /^[\x20-\x7e]*$/;
const HOST_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const HOST = new RegExp(`^(?:${HOST_LABEL}\\.)*${HOST_LABEL}$`);
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
/** An attribute type: a name, or a numeric OID. */
const ATTRIBUTE = /^(?:[A-Za-z][A-Za-z0-9-]{0,63}|\d+(?:\.\d+)+)$/;
/** Longest DN or filter taken: far above any real one, and one line of a map file. */
export const MAX_LDAP_TEXT = 1024;
/** Longest bind password taken. */
export const MAX_BIND_PASSWORD_LENGTH = 128;

/** The server of an LDAP URL: scheme, host and port; undefined when it is not one (see {@link ldapUrlProblem}). */
export function parseLdapUrl(url: string): { scheme: "ldap" | "ldaps"; host: string; port: number } | undefined {
  const match = /^(ldaps?):\/\/([^:/?#\s]+)(?::(\d{1,5}))?$/i.exec(url);
  if (!match) return undefined;
  const [, scheme, host, port] = match;
  if (!(IPV4.test(host) || (host.length <= 253 && HOST.test(host) && !/^[\d.]+$/.test(host)))) return undefined;
  const number = port === undefined ? (scheme.toLowerCase() === "ldaps" ? 636 : 389) : Number(port);
  if (number < 1 || number > 65535) return undefined;
  return { scheme: scheme.toLowerCase() as "ldap" | "ldaps", host, port: number };
}

/** Why `url` is not `ldaps://host[:port]` or `ldap://host[:port]`; StartTLS is the rule ldapDirectory's. */
export function ldapUrlProblem(url: string): string | undefined {
  const shown = JSON.stringify(url.length > 80 ? `${url.slice(0, 80)}…` : url);
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url)?.[1];
  if (scheme === undefined) return `${shown} is not an LDAP URL; write it as ldaps://host[:port], e.g. ldaps://ldap.example.com`;
  if (!/^ldaps?$/i.test(scheme)) {
    return `${shown} has the scheme ${scheme}; only ldaps://host[:port] (TLS from the start) or ldap://host[:port] with startTls: true are taken (ldapi:// sockets and cldap:// are not)`;
  }
  const rest = url.slice(scheme.length + 3);
  if (/[/?#]/.test(rest)) return `${shown} has a path, query or fragment; name only the server, e.g. ${scheme}://${rest.split(/[/?#]/)[0]} (the search base is ldap.baseDn)`;
  if (parseLdapUrl(url) === undefined) return `${shown} does not name a server as host or host:port (a DNS name or an IPv4 address, a port from 1 to 65535); write it like ldaps://ldap.example.com:636`;
  return undefined;
}

/**
 * Why `dn` is not a distinguished name (RFC 4514): RDNs of `type=value` separated by `,` (or
 * `+` within one RDN), special characters escaped with `\`. `%` is refused: Dovecot and
 * Postfix expand it in a search base.
 */
export function dnProblem(dn: string): string | undefined {
  const fix = "write it like cn=mail,ou=services,dc=example,dc=com (AD: CN=svc-mail,OU=Service Accounts,DC=corp,DC=example,DC=com)";
  if (dn.trim() === "") return `is empty; ${fix}`;
  if (dn.length > MAX_LDAP_TEXT) return `is longer than ${MAX_LDAP_TEXT} characters; ${fix}`;
  if (!PRINTABLE.test(dn)) return `holds a line break, a tab or a character outside printable ASCII; escape others as \\XX (UTF-8 bytes in hex), ${fix}`;
  if (dn.includes("%")) return `holds %, which Dovecot and Postfix would expand as a placeholder; write it as \\25`;
  let i = 0;
  const at = () => `at character ${i + 1}`;
  for (;;) {
    // One attribute type and value.
    const type = /^[A-Za-z][A-Za-z0-9-]*|^\d+(?:\.\d+)+/.exec(dn.slice(i))?.[0];
    if (type === undefined) return `is not a DN: an attribute type such as cn, ou or dc is missing ${at()}; ${fix}`;
    i += type.length;
    if (dn[i] !== "=") return `is not a DN: "=" is missing after ${type} ${at()}; ${fix}`;
    i++;
    const start = i;
    while (i < dn.length && dn[i] !== "," && dn[i] !== "+") {
      const c = dn[i];
      if (c === "\\") {
        if (/^\\[0-9A-Fa-f]{2}/.test(dn.slice(i))) i += 3;
        else if (i + 1 < dn.length && ` "#+,;<=>\\`.includes(dn[i + 1])) i += 2;
        else return `is not a DN: "\\" escapes a special character or two hex digits only ${at()}; ${fix}`;
        continue;
      }
      if (`";<>`.includes(c)) return `is not a DN: ${c} must be escaped as \\${c} ${at()}; ${fix}`;
      i++;
    }
    const value = dn.slice(start, i);
    if (value === "") return `is not a DN: ${type}= has no value ${at()}; ${fix}`;
    if (value.startsWith(" ") || (value.endsWith(" ") && !value.endsWith("\\ "))) return `is not a DN: the value of ${type} begins or ends with a space; remove it (or escape it as \\20), ${fix}`;
    if (i === dn.length) return undefined;
    i++;
  }
}

/** The user filter each flavor of directory gets when `ldap.userFilter` is left out. */
export const DEFAULT_USER_FILTERS = {
  /** inetOrgPerson entries by their mail attribute. */
  openldap: "(&(objectClass=inetOrgPerson)(mail=%u))",
  /** User objects by mail, without disabled accounts (ACCOUNTDISABLE, bit 2 of userAccountControl). */
  activedirectory: "(&(objectClass=user)(mail=%u)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
} as const;

/** The placeholders a filter may hold: the whole address, its local part, its domain. */
export const FILTER_PLACEHOLDERS = ["%u", "%n", "%d"] as const;

/**
 * Why `filter` is not an LDAP search filter (RFC 4515) that looks up one address: one
 * parenthesised filter, with `%u` (the address) in it and no other `%` than the placeholders.
 */
export function ldapFilterProblem(filter: string): string | undefined {
  const fix = "write it like (&(objectClass=inetOrgPerson)(mail=%u))";
  if (filter.length > MAX_LDAP_TEXT) return `is longer than ${MAX_LDAP_TEXT} characters`;
  if (!PRINTABLE.test(filter)) return `holds a line break, a tab or a character outside printable ASCII; escape others as \\XX (UTF-8 bytes in hex)`;
  const open = filter.split("(").length - 1;
  const close = filter.split(")").length - 1;
  if (open !== close) return `has unbalanced parentheses (${open} "(" and ${close} ")"); ${fix}`;
  for (const m of filter.matchAll(/%(.?)/g)) {
    if (!(FILTER_PLACEHOLDERS as readonly string[]).includes(m[0])) {
      return `holds ${JSON.stringify(m[0])}, which is no placeholder here; use %u (the address), %n (its local part) or %d (its domain), and write a literal % as \\25`;
    }
  }
  let i = 0;
  const fail = (what: string) => `is not an LDAP filter (RFC 4515): ${what} at character ${i + 1}; ${fix}`;
  // Recursive descent over filter = "(" ( ("&" / "|") 1*filter / "!" filter / item ) ")".
  const parseFilter = (): string | undefined => {
    if (filter[i] !== "(") return fail('"(" expected');
    i++;
    const c = filter[i];
    if (c === "&" || c === "|") {
      i++;
      if (filter[i] !== "(") return fail(`${c} needs at least one filter in parentheses`);
      while (filter[i] === "(") {
        const problem = parseFilter();
        if (problem) return problem;
      }
    } else if (c === "!") {
      i++;
      const problem = parseFilter();
      if (problem) return problem;
    } else {
      const problem = parseItem();
      if (problem) return problem;
    }
    if (filter[i] !== ")") return fail('")" expected');
    i++;
    return undefined;
  };
  const parseItem = (): string | undefined => {
    const head = /^(?:([A-Za-z][A-Za-z0-9-]*(?:;[A-Za-z0-9-]+)*|\d+(?:\.\d+)+)(?::dn)?(?::([A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+))?(:=|~=|>=|<=|=)|(?::dn)?:([A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+):=)/i.exec(filter.slice(i));
    if (!head) return fail("an attribute and =, ~=, >=, <= or := expected");
    i += head[0].length;
    const start = i;
    while (i < filter.length && filter[i] !== ")") {
      if (filter[i] === "(") return fail('"(" inside a value must be escaped as \\28');
      if (filter[i] === "\\") {
        if (!/^\\[0-9A-Fa-f]{2}/.test(filter.slice(i))) return fail('"\\" escapes two hex digits only, e.g. \\2a for *');
        i += 3;
        continue;
      }
      i++;
    }
    if (i === start) return fail("a value expected");
    return undefined;
  };
  const problem = parseFilter();
  if (problem) return problem;
  if (i !== filter.length) return fail("the filter ends before");
  if (!filter.includes("%u")) return `has no %u placeholder, so every login would find the same entries; match the address with it, e.g. (mail=%u)`;
  return undefined;
}

/** Why `name` is not an attribute type, e.g. mail. */
export function attributeProblem(name: string): string | undefined {
  return ATTRIBUTE.test(name) ? undefined : `${JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name)} is not an attribute name; write one such as mail or userPrincipalName`;
}

/**
 * Why `pem` is not one or more X.509 certificates in PEM, each as OpenSSL writes it (64 base64
 * characters a line). Surrounding blank lines are fine.
 */
export function certificateProblem(pem: string): string | undefined {
  const fix = "paste the CA certificate, from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----";
  if (/PRIVATE KEY/.test(pem)) return `is a private key; give the certificate of the CA that signed the directory server's certificate, never a key`;
  const lines = pem.trim().split("\n");
  let n = 0;
  while (n < lines.length) {
    if (lines[n] !== "-----BEGIN CERTIFICATE-----") return `is not a PEM certificate: line ${n + 1} is not -----BEGIN CERTIFICATE-----; ${fix}`;
    const body: string[] = [];
    for (n++; n < lines.length && lines[n] !== "-----END CERTIFICATE-----"; n++) {
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(lines[n]) || lines[n].length > 64 || (body.length > 0 && body[body.length - 1].length !== 64)) {
        return `is not a PEM certificate: line ${n + 1} is not a line of base64 (64 characters but the last); ${fix}`;
      }
      body.push(lines[n]);
    }
    if (n === lines.length) return `is not a PEM certificate: -----END CERTIFICATE----- is missing; ${fix}`;
    try {
      new X509Certificate(Buffer.from(body.join(""), "base64"));
    } catch {
      return `is not a PEM certificate: the block ending at line ${n + 1} is not an X.509 certificate; ${fix}`;
    }
    n++;
  }
  return undefined;
}

/**
 * Why a bind password cannot be delivered: Dovecot reads it quoted and Postfix as the rest of
 * a line, so it is one line of printable ASCII that does not begin or end with a space.
 */
export function bindPasswordProblem(password: unknown): string | undefined {
  if (typeof password !== "string") return "must be a string";
  if (password === "") return "is empty; give the bind account's password";
  if (password.length > MAX_BIND_PASSWORD_LENGTH) return `is longer than ${MAX_BIND_PASSWORD_LENGTH} characters`;
  if (!PRINTABLE.test(password)) return "holds a line break, a tab or a character outside printable ASCII, which Postfix's map file cannot carry; choose a password of printable ASCII";
  if (password.trim() !== password) return "begins or ends with a space, which Postfix would drop from its map file; choose one without";
  return undefined;
}
