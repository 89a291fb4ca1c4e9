// mailstack-sync's grammars of the LDAP runtime key files: what the core renders parses, with
// a bind password of every printable character; a file that would add a setting does not.
import { parseConfig, runtimeFiles } from "@mailstack/core";
import { minimalConfig } from "../support/fixtures";
import { grammarProblems as problems, PRINTABLE } from "../support/sync-grammar";
import { requireTools } from "../support/tools";

requireTools("python3");

const ldap = { url: "ldaps://ldap.example.com", bindDn: "cn=mail,dc=example,dc=com", bindPassword: "x", baseDn: "ou=people,dc=example,dc=com" };

test("the rendered files parse, with a bind password of every printable character and inner spaces", () => {
  const config = parseConfig({ ...minimalConfig(), ldap });
  const secrets = { passwordHashes: new Map([["alice@example.com", "{PLAIN}x"]]), dkimPrivateKeyPem: "", tlsPrivateKeyPem: "", resticPassword: "r" };
  const files = runtimeFiles(config, { ...secrets, ldapBindPassword: `a ${PRINTABLE} z` }).filter((f) => f.name.startsWith("ldap/"));
  expect(files.map((f) => f.name)).toEqual(["ldap/dovecot-bind", "ldap/postfix-map.cf"]);
  expect(problems([["dovecot-ldap-bind", files[0].content], ["postfix-ldap", files[1].content]])).toEqual([null, null]);
});

test("a file that adds a setting, or a password that leaves its quotes, is refused", () => {
  expect(
    problems([
      ["dovecot-ldap-bind", 'dnpass = "x"\nauth_bind = no\n'],
      ["dovecot-ldap-bind", 'dnpass = "x" y"\n'],
      ["dovecot-ldap-bind", "dnpass = x\n"],
      ["dovecot-ldap-bind", "!include /etc/shadow\n"],
      ["postfix-ldap", "bind_pw = x\nresult_format = evil\n"],
      ["postfix-ldap", "bind_pw = \n"],
      ["postfix-ldap", "server_host = ldap://evil.example\tx\n"],
    ]),
  ).toEqual([
    [2, expect.stringContaining("is not dnpass")],
    [1, expect.stringContaining("is not dnpass")],
    [1, expect.stringContaining("is not dnpass")],
    [1, expect.stringContaining("is not dnpass")],
    [2, expect.stringContaining("is not an ldap_table setting")],
    [1, expect.stringContaining("is not an ldap_table setting")],
    [1, expect.stringContaining("is not an ldap_table setting")],
  ]);
});
