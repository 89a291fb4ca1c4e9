// mailstack-sync's grammars of the LDAP runtime key files: what the core renders parses, with
// a bind password of every printable character; a file that would add a setting does not.
import { join } from "node:path";
import { parseConfig, runtimeFiles } from "@mailstack/core";
import { minimalConfig } from "../support/fixtures";
import { requireTools, run } from "../support/tools";

requireTools("python3");

const SCRIPT = join(__dirname, "..", "..", "packages", "core", "scripts", "mailstack-sync.py");

/** The sync's verdict on each [grammar, content]: null when it parses, else [line, reason]. */
function problems(files: [grammar: string, content: string][]): ([number, string] | null)[] {
  const program = `
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("sync", sys.argv[1])
sync = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sync)
print(json.dumps([sync.content_problem(g, c.encode("utf-8")) for g, c in json.load(sys.stdin)]))
`;
  const r = run("/usr/bin/python3", ["-B", "-c", program, SCRIPT], { input: JSON.stringify(files) });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as ([number, string] | null)[];
}

const PRINTABLE = Array.from({ length: 0x7f - 0x21 }, (_, i) => String.fromCharCode(0x21 + i)).join("");
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
