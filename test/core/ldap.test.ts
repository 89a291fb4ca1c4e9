// What the core renders for `ldap`: Dovecot's passdb and userdb after the users file, its
// settings with every free value quoted, Postfix's table with Postfix's placeholders, and the
// bind password only in the two runtime key files.
import { authCacheTtl, hostFiles, hostPackages, keyFileNames, type MailConfigInput, parseConfig, postfixFilter, runtimeFiles } from "@mailstack/core";
import { minimalConfig } from "../support/fixtures";
import { TEST_LDAP_CA } from "../support/ldap-ca";

const PARAMS = { region: "eu-west-1", ssmPath: "/mailstack/test/mail", dataVolumeId: "vol-0123456789abcdef0", backupRepository: "s3:https://s3.eu-west-1.amazonaws.com/b/restic" };
const PASSWORD = 'bind "#canary" \\ $HOME';
const withLdap = (ldap: Partial<NonNullable<MailConfigInput["ldap"]>> = {}): MailConfigInput => ({
  ...minimalConfig(),
  extraDomains: ["example.org"],
  ldap: { url: "ldaps://ldap.example.com", bindDn: "CN=svc mail,OU=Services,DC=example,DC=com", bindPassword: PASSWORD, baseDn: "OU=People,DC=example,DC=com", ...ldap },
});
const host = (input: MailConfigInput) => new Map(hostFiles(parseConfig(input), PARAMS).map((f) => [f.path, f.content]));
const secrets = { passwordHashes: new Map([["alice@example.com", "{PLAIN}x"]]), dkimPrivateKeyPem: "", tlsPrivateKeyPem: "", resticPassword: "r", ldapBindPassword: PASSWORD };

test("Dovecot asks the directory after every passwd-file, only for its domains, with the directory's cache lifetime", () => {
  const conf = host(withLdap({ domains: ["example.org"], cacheSeconds: 120 })).get("/etc/dovecot/dovecot.conf")!;
  const passdbs = [...conf.matchAll(/^passdb \{\n([^}]*)\}/gm)].map((m) => m[1]);
  expect(passdbs.at(-1)).toBe("  driver = ldap\n  args = /etc/dovecot/dovecot-ldap.conf.ext\n  username_filter = *@example.org\n");
  expect(passdbs.slice(0, -1).every((p) => p.includes("driver = passwd-file"))).toBe(true);
  const userdbs = [...conf.matchAll(/^userdb \{\n([^}]*)\}/gm)].map((m) => m[1]);
  expect(userdbs.map((u) => /driver = (\S+)/.exec(u)![1])).toEqual(["passwd-file", "ldap"]);
  expect(conf).toContain("\nauth_cache_ttl = 120 secs\n");
  expect(authCacheTtl(parseConfig(minimalConfig()))).toBe("1 hour");
});

test("Dovecot's settings: TLS verified, passwords checked by binding as the user, DNs and filters quoted, uid, gid and home not the directory's", () => {
  const files = host(withLdap({ caCertificate: TEST_LDAP_CA, quota: "1G" }));
  expect(files.get("/etc/dovecot/mailstack-ldap-ca.pem")).toBe(TEST_LDAP_CA);
  const conf = files.get("/etc/dovecot/dovecot-ldap.conf.ext")!;
  expect(conf.split("\n").filter((l) => l && !l.startsWith("#"))).toEqual([
    "uris = ldaps://ldap.example.com",
    "ldap_version = 3",
    "tls = no",
    "tls_ca_cert_file = /etc/dovecot/mailstack-ldap-ca.pem",
    "tls_require_cert = hard",
    'dn = "CN=svc mail,OU=Services,DC=example,DC=com"',
    "!include_try /etc/mailstack/ldap/dovecot-bind",
    "auth_bind = yes",
    'base = "OU=People,DC=example,DC=com"',
    "scope = subtree",
    "deref = never",
    'pass_filter = "(&(objectClass=inetOrgPerson)(mail=%u))"',
    'user_filter = "(&(objectClass=inetOrgPerson)(mail=%u))"',
    "pass_attrs = =user=%L{ldap:mail}",
    "user_attrs = =uid=5000, =gid=5000, =home=/var/vmail/%d/%n, =quota_rule=*:storage=1024M",
  ]);
  expect(conf).not.toContain("canary");
  // StartTLS, and the system's CA store without a CA of its own.
  const startTls = host(withLdap({ url: "ldap://ldap.example.com", startTls: true })).get("/etc/dovecot/dovecot-ldap.conf.ext")!;
  expect(startTls).toMatch(/^tls = yes$/m);
  expect(startTls).toMatch(/^tls_ca_cert_file = \/etc\/ssl\/certs\/ca-certificates\.crt$/m);
});

test("Postfix asks the directory after its own maps, through proxymap, for mailboxes and sender logins", () => {
  const main = host(withLdap()).get("/etc/postfix/main.cf")!;
  expect(main).toContain("\nvirtual_mailbox_maps = texthash:/etc/mailstack/mailboxes, proxy:ldap:/etc/mailstack/ldap/postfix-map.cf\n");
  expect(main).toContain("\nsmtpd_sender_login_maps = texthash:/etc/mailstack/sender-logins, proxy:ldap:/etc/mailstack/ldap/postfix-map.cf\n");
  expect(main).toContain("\nvirtual_alias_maps = texthash:/etc/mailstack/aliases\n");
  expect(postfixFilter("(&(uid=%n)(mail=%u)(o=%d)(cn=100\\25))")).toBe("(&(uid=%u)(mail=%s)(o=%d)(cn=100\\25))");
});

test("the bind password is in the two runtime key files and in no host file", () => {
  const config = parseConfig(withLdap({ flavor: "activedirectory" }));
  const files = runtimeFiles(config, secrets).filter((f) => f.name.startsWith("ldap/"));
  expect(files.map((f) => [f.name, f.key, f.mode, f.group, f.reload])).toEqual([
    ["ldap/dovecot-bind", true, "0640", "dovecot", ["dovecot.service"]],
    ["ldap/postfix-map.cf", true, "0640", "postfix", ["postfix.service"]],
  ]);
  expect(files[0].content).toBe('dnpass = "bind \\"#canary\\" \\\\ $HOME"\n');
  expect(files[1].content).toBe(
    [
      "server_host = ldaps://ldap.example.com",
      "version = 3",
      "start_tls = no",
      "tls_ca_cert_file = /etc/ssl/certs/ca-certificates.crt",
      "tls_require_cert = yes",
      "bind = yes",
      "bind_dn = CN=svc mail,OU=Services,DC=example,DC=com",
      `bind_pw = ${PASSWORD}`,
      "search_base = OU=People,DC=example,DC=com",
      "scope = sub",
      "query_filter = (&(objectClass=user)(mail=%s)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
      "result_attribute = mail",
      "domain = example.com, example.org",
      "",
    ].join("\n"),
  );
  expect(keyFileNames(config)).toEqual(expect.arrayContaining(["ldap/dovecot-bind", "ldap/postfix-map.cf"]));
  for (const [path, content] of host(withLdap())) expect({ path, found: content.includes("canary") }).toEqual({ path, found: false });
  expect(() => runtimeFiles(config, { ...secrets, ldapBindPassword: undefined })).toThrow("no bind password");
  expect(() => runtimeFiles(config, { ...secrets, ldapBindPassword: "x\nbind_dn = evil" })).toThrow("not one line of printable ASCII");
});

test("without a directory nothing of it is rendered, but the packages are always installed", () => {
  const config = parseConfig(minimalConfig());
  expect([...host(minimalConfig()).keys()].filter((p) => /ldap/.test(p))).toEqual([]);
  expect(runtimeFiles(config, secrets).filter((f) => f.name.startsWith("ldap/"))).toEqual([]);
  expect(keyFileNames(config)).not.toContain("ldap/dovecot-bind");
  expect(hostPackages()).toEqual(expect.arrayContaining(["dovecot-ldap", "postfix-ldap"]));
});
