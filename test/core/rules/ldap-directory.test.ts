import { ldapDirectory } from "../../../packages/core/src/config/rules/ldap-directory";
import { check, lines, PASSWORD } from "./check";

const LDAP = { url: "ldaps://ldap.example.com", bindDn: "cn=mail,ou=services,dc=example,dc=com", bindPassword: "bind secret", baseDn: "ou=people,dc=example,dc=com" };

test("fills the directory with its defaults: every hosted domain, the flavor's filter, the mailbox quota, five minutes' cache", () => {
  const { issues, ctx } = check(ldapDirectory, { extraDomains: ["example.org"], ldap: LDAP });
  expect(issues).toEqual([]);
  expect(ctx.ldap).toEqual({
    url: "ldaps://ldap.example.com",
    startTls: false,
    bindDn: LDAP.bindDn,
    baseDn: LDAP.baseDn,
    userFilter: "(&(objectClass=inetOrgPerson)(mail=%u))",
    mailAttribute: "mail",
    domains: ["example.com", "example.org"],
    cacheSeconds: 300,
    quotaMiB: 5120,
  });
  const ad = check(ldapDirectory, { ldap: { ...LDAP, flavor: "activedirectory", quota: "unlimited" } }).ctx.ldap;
  expect(ad?.userFilter).toBe("(&(objectClass=user)(mail=%u)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))");
  expect(ad && "quotaMiB" in ad).toBe(false);
  expect(check(ldapDirectory, {}).ctx.ldap).toBeUndefined();
});

test("takes ldap:// only with StartTLS, and StartTLS only on ldap://", () => {
  expect(check(ldapDirectory, { ldap: { ...LDAP, url: "ldap://ldap.example.com", startTls: true } }).ctx.ldap?.startTls).toBe(true);
  expect(lines(ldapDirectory, { ldap: { ...LDAP, url: "ldap://ldap.example.com:3389" } })).toEqual([
    'ldap.url: "ldap://ldap.example.com:3389" is plain LDAP, which would carry the bind password and every user\'s password in clear; write ldaps://ldap.example.com (port 636), or keep it and set ldap.startTls: true (ldap://ldap.example.com:3389 upgraded before anything is sent)',
  ]);
  expect(lines(ldapDirectory, { ldap: { ...LDAP, startTls: true } })).toEqual(["ldap.startTls: is for ldap:// URLs; an ldaps:// connection is TLS from its first byte: remove startTls"]);
});

test("needs a bind password that Postfix's and Dovecot's files can carry", () => {
  const { bindPassword: _, ...without } = LDAP;
  expect(lines(ldapDirectory, { ldap: without })).toEqual(["ldap.bindPassword: is required with bindDn; set it with `pulumi config set --secret --path 'ldap.bindPassword'`"]);
  expect(lines(ldapDirectory, { ldap: { ...LDAP, bindPassword: "two\nlines" } })).toEqual([expect.stringMatching(/^ldap\.bindPassword: holds a line break/)]);
  expect(lines(ldapDirectory, { ldap: { ...LDAP, bindPassword: " padded" } })).toEqual([expect.stringMatching(/^ldap\.bindPassword: begins or ends with a space/)]);
  // A Pulumi secret is checked by the component once it resolves.
  expect(lines(ldapDirectory, { ldap: { ...LDAP, bindPassword: {} } })).toEqual([]);
});

test("its domains are hosted, each once, and none has a catch-all", () => {
  expect(lines(ldapDirectory, { extraDomains: ["example.org"], ldap: { ...LDAP, domains: ["example.net", "Example.ORG", "example.org"] } })).toEqual([
    'ldap.domains[0]: "example.net" is not a hosted domain (example.com, example.org); directory users receive and log in here only in domains this server hosts: add it to extraDomains or remove it',
    "ldap.domains[2]: is example.org again; list each domain once",
  ]);
  expect(lines(ldapDirectory, { ldap: { ...LDAP, domains: [] } })).toEqual(["ldap.domains: is empty; name the hosted domains whose users the directory holds, or leave it out for all of them"]);
  expect(
    lines(ldapDirectory, { extraDomains: ["example.org"], mailboxes: [{ address: "alice@example.com", password: PASSWORD }], catchAll: { "example.org": "alice@example.com" }, ldap: LDAP }),
  ).toEqual([expect.stringMatching(/^ldap\.domains: includes example\.org, which has a catch-all/)]);
  expect(
    check(ldapDirectory, { extraDomains: ["example.org"], mailboxes: [{ address: "alice@example.com", password: PASSWORD }], catchAll: { "example.org": "alice@example.com" }, ldap: { ...LDAP, domains: ["example.com"] } }).ctx.ldap?.domains,
  ).toEqual(["example.com"]);
});
