/**
 * Users from an LDAP directory, with real daemons: Debian's OpenLDAP slapd serves a directory
 * over ldaps:// (and StartTLS) on the stack's loopback, with a certificate of a CA the test
 * makes, and the stack (Postfix, Dovecot, rspamd in a network namespace) runs the files the
 * core renders for `ldap`. A user defined only in the directory logs in and receives beside
 * the stack config's mailbox; a wrong password, a removed user, a user outside the directory's
 * domains and a server whose certificate the configured CA did not sign are all refused.
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hostFiles, type MailConfigInput, parseConfig } from "@mailstack/core";
import { runtimeSync } from "../support/runtime-sync";
import { message, OUTSIDE_DOMAIN, source, TestStack } from "../support/stack";
import { groupId, requireRoot, requireTools, run, runAsync, runOk, TEST_PARAMS, tempRoot } from "../support/tools";

requireTools("slapd", "slapadd", "ldapdelete", "ldapwhoami", "dovecot ldap", "postfix ldap", "openssl", "ip", "python3", "boto3");
requireRoot("the stack and the directory run in a network namespace of their own");

const SUFFIX = "dc=example,dc=com";
const ADMIN = { dn: `cn=admin,${SUFFIX}`, password: "directory admin secret" };
/** The search account: read access to the people, nothing else. Its password has what Dovecot's and Postfix's files treat specially. */
const BIND = { dn: `cn=mail search,ou=services,${SUFFIX}`, password: 'bind #pass "quoted" \\ $HOME %u' };
const ALICE = { address: "alice@example.com", password: "first long test passphrase" };
/** Directory users: dirk in the directory's domain, gone to be removed, olga in a hosted domain that is not the directory's, eve in none. */
const PEOPLE = {
  dirk: { mail: "dirk@example.com", password: "dirk directory password" },
  gone: { mail: "gone@example.com", password: "gone directory password" },
  olga: { mail: "olga@example.org", password: "olga directory password" },
  eve: { mail: "eve@elsewhere.example", password: "eve directory password" },
};
/** Seconds a directory login is cached: short, so a removal shows within the test. */
const CACHE_SECONDS = 3;
const LDAPS = "ldaps://127.0.0.1";

let dir: string;
let ca: string;
let wrongCa: string;
let stack: TestStack;
const { apply } = runtimeSync(() => stack);
let input: MailConfigInput;
let nextSource = 10;
const newSource = () => source(nextSource++);
const code = (reply: string | undefined) => Number((reply ?? "").split("\n").pop()!.slice(0, 3));

/** A CA and a server certificate for 127.0.0.1 that it signs; returns the CA's PEM. */
function makeCa(name: string, server?: string): string {
  const at = (file: string) => join(dir, `${name}-${file}`);
  runOk("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", `/CN=${name}`, "-keyout", at("ca.key"), "-out", at("ca.pem")]);
  if (server) {
    runOk("openssl", ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", `${server}.key`, "-out", `${server}.csr`]);
    writeFileSync(`${server}.ext`, "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    runOk("openssl", ["x509", "-req", "-in", `${server}.csr`, "-CA", at("ca.pem"), "-CAkey", at("ca.key"), "-CAcreateserial", "-days", "2", "-extfile", `${server}.ext`, "-out", `${server}.pem`]);
  }
  return readFileSync(at("ca.pem"), "utf8");
}

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");
const person = (uid: string, p: { mail: string; password: string }) =>
  `dn: uid=${uid},ou=people,${SUFFIX}\nobjectClass: inetOrgPerson\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\nmail: ${p.mail}\nuserPassword:: ${b64(p.password)}\n`;

/** slapd as Debian installs it, started in the stack's namespace on ldaps:// and ldap:// (StartTLS). */
function startSlapd(): void {
  const db = join(dir, "db");
  mkdirSync(db, { recursive: true });
  const conf = join(dir, "slapd.conf");
  writeFileSync(
    conf,
    [
      "include /etc/ldap/schema/core.schema",
      "include /etc/ldap/schema/cosine.schema",
      "include /etc/ldap/schema/inetorgperson.schema",
      `pidfile ${dir}/slapd.pid`,
      "modulepath /usr/lib/ldap",
      "moduleload back_mdb",
      `TLSCertificateFile ${dir}/server.pem`,
      `TLSCertificateKeyFile ${dir}/server.key`,
      "database mdb",
      `suffix "${SUFFIX}"`,
      `rootdn "${ADMIN.dn}"`,
      `rootpw "${ADMIN.password}"`,
      `directory ${db}`,
      // The bind account reads the people; passwords are only ever compared at a bind.
      "access to attrs=userPassword",
      "  by anonymous auth",
      "  by * none",
      `access to dn.subtree="ou=people,${SUFFIX}"`,
      `  by dn.exact="${BIND.dn}" read`,
      "  by * none",
      "access to *",
      `  by dn.exact="${BIND.dn}" search`,
      "  by * none",
      "",
    ].join("\n"),
  );
  const entries = [
    `dn: ${SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n`,
    `dn: ou=people,${SUFFIX}\nobjectClass: organizationalUnit\nou: people\n`,
    `dn: ou=services,${SUFFIX}\nobjectClass: organizationalUnit\nou: services\n`,
    `dn: ${BIND.dn}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: mail search\nuserPassword:: ${b64(BIND.password)}\n`,
    ...Object.entries(PEOPLE).map(([uid, p]) => person(uid, p)),
  ];
  writeFileSync(join(dir, "data.ldif"), entries.join("\n"));
  runOk("slapadd", ["-f", conf, "-l", join(dir, "data.ldif")]);
  runOk("ip", ["netns", "exec", stack.ns, "slapd", "-f", conf, "-h", `${LDAPS}/ ldap://127.0.0.1/`], { stdio: ["ignore", "pipe", "pipe"] });
}

/** An LDAP client command in the namespace, trusting the test CA. */
const ldapClient = (command: string, args: string[]) => run("ip", ["netns", "exec", stack.ns, command, ...args], { env: { ...process.env, LDAPTLS_CACERT: join(dir, "good-ca.pem") } });

/**
 * Applies a changed `ldap` block as a `pulumi up` reaches the host: the host bundle's LDAP
 * files written and Dovecot and Postfix reloaded (what the sync does for a new bundle), then
 * the runtime files through the real mailstack-sync. Returns the sync's output.
 */
async function applyLdap(ldap: Partial<NonNullable<MailConfigInput["ldap"]>>): Promise<string> {
  const changed = { ...input, ldap: { ...input.ldap!, ...ldap } };
  const config = parseConfig(changed);
  for (const f of hostFiles(config, TEST_PARAMS, stack.host.env).filter((f) => /ldap/.test(f.path))) writeFileSync(f.path, f.content);
  runOk("ip", ["netns", "exec", stack.ns, "doveadm", "-c", stack.dovecotConfig, "reload"]);
  const reloaded = stack.postfix("reload");
  if (reloaded.status !== 0) throw new Error(`postfix reload: ${reloaded.stderr}`);
  const { stdout: out } = await apply(changed, { ldapBindPassword: BIND.password });
  // A reload starts Dovecot's login cache afresh; wait for the new auth service.
  await stack.until("Dovecot's auth service after the reload", () => stack.doveadm("auth", "cache", "flush").status === 0, 10000);
  return out;
}

beforeAll(async () => {
  dir = tempRoot("ms-ldap");
  ca = makeCa("good", join(dir, "server"));
  wrongCa = makeCa("wrong");
  input = {
    domain: "example.com",
    extraDomains: ["example.org"],
    mailboxes: [{ address: ALICE.address, password: ALICE.password }],
    ldap: { url: LDAPS, bindDn: BIND.dn, bindPassword: BIND.password, baseDn: `ou=people,${SUFFIX}`, caCertificate: ca, domains: ["example.com"], cacheSeconds: CACHE_SECONDS },
  };
  stack = await TestStack.start(input);
  startSlapd();
  await stack.until("slapd on ldaps://", () => ldapClient("ldapwhoami", ["-x", "-H", LDAPS, "-D", BIND.dn, "-w", BIND.password]).status === 0, 20000);
}, 300000);
afterAll(async () => {
  const pid = (() => {
    try {
      return readFileSync(join(dir, "slapd.pid"), "utf8").trim();
    } catch {
      return undefined;
    }
  })();
  if (pid && /^\d+$/.test(pid)) run("kill", [pid]);
  await stack?.stop();
  if (dir) await runAsync("rm", ["-rf", dir]);
});

/** An IMAPS login of `user` (listing INBOX): the messages' subjects, or the refusal. */
async function imap(user: string, pass: string): Promise<{ subjects?: string[]; error?: string; response?: string | null }> {
  const r = await stack.imap({ user, pass, source: newSource(), actions: [{ list: "INBOX" }] });
  if (r.error) return { error: r.error, response: r.response };
  return { subjects: (r.results![0] as { source: string }[]).map((m) => /^Subject: (.*)$/m.exec(m.source)?.[1] ?? "") };
}

/** One submission session on 587 as `user`: every reply from AUTH on. */
async function submission(user: string, pass: string, steps: (string | { data: string })[] = []): Promise<string[]> {
  const auth = `AUTH PLAIN ${Buffer.from(`\0${user}\0${pass}`).toString("base64")}`;
  const s = await stack.smtp({ port: 587, source: newSource(), steps: ["EHLO client.example.net", { starttls: true }, "EHLO client.example.net", auth, ...steps, "QUIT"] });
  return s.replies.slice(3).map((r) => r.reply);
}

/** Sends a message from outside to `to`, which must be accepted, and waits until `user` reads it over IMAPS. */
async function deliver(to: string, user: string, pass: string, tag: string): Promise<void> {
  const subject = `${tag} ${Date.now()} ${nextSource}`;
  const replies = await stack.inbound([to], message(`someone@${OUTSIDE_DOMAIN}`, to, subject));
  expect({ to, replies: replies.map(code) }).toEqual({ to, replies: [250, 250, 250, 221] });
  await stack.until(`"${subject}" in ${user}'s INBOX`, async () => (await imap(user, pass)).subjects?.includes(subject) ?? false);
}

describe("a user defined only in the directory", () => {
  test("logs in over IMAPS and over submission, sends as its own address only, and receives on port 25", async () => {
    expect(await imap(PEOPLE.dirk.mail, PEOPLE.dirk.password)).toEqual({ subjects: [] });
    const sent = await submission(PEOPLE.dirk.mail, PEOPLE.dirk.password, [
      `MAIL FROM:<${PEOPLE.dirk.mail}>`,
      `RCPT TO:<${ALICE.address}>`,
      { data: message(PEOPLE.dirk.mail, ALICE.address, "hello from the directory") },
    ]);
    expect(sent.map(code)).toEqual([235, 250, 250, 250, 221]);
    // Postfix asks the directory who may send as an address: dirk's is dirk's alone.
    const forged = await submission(PEOPLE.dirk.mail, PEOPLE.dirk.password, [`MAIL FROM:<${ALICE.address}>`, `RCPT TO:<${PEOPLE.gone.mail}>`]);
    expect(forged[2]).toBe(`553 5.7.1 <${ALICE.address}>: Sender address rejected: not owned by user ${PEOPLE.dirk.mail}`);
    const asDirk = await submission(ALICE.address, ALICE.password, [`MAIL FROM:<${PEOPLE.dirk.mail}>`, `RCPT TO:<${PEOPLE.gone.mail}>`]);
    expect(asDirk[2]).toBe(`553 5.7.1 <${PEOPLE.dirk.mail}>: Sender address rejected: not owned by user ${ALICE.address}`);
    await deliver(PEOPLE.dirk.mail, PEOPLE.dirk.mail, PEOPLE.dirk.password, "to dirk");
    // Stored under the vmail tree like a mailbox of the stack config.
    expect(stack.maildirCount(PEOPLE.dirk.mail)).toBe(1);
  });

  test("the stack config's mailbox still logs in and receives beside it, including dirk's message", async () => {
    await stack.until("dirk's message in alice's INBOX", async () => (await imap(ALICE.address, ALICE.password)).subjects?.includes("hello from the directory") ?? false);
    await deliver(ALICE.address, ALICE.address, ALICE.password, "to alice");
    expect((await submission(ALICE.address, ALICE.password))[0]).toMatch(/^235 /);
  });

  test("a wrong password is refused over IMAPS and submission", async () => {
    expect(await imap(PEOPLE.dirk.mail, "not dirk's password")).toEqual({ error: "authentication failed", response: expect.anything() });
    expect((await submission(PEOPLE.dirk.mail, "not dirk's password"))[0]).toMatch(/^535 5\.7\.8 /);
    // The directory's password, not the search account's, and not another user's.
    expect((await imap(PEOPLE.dirk.mail, PEOPLE.gone.password)).error).toBe("authentication failed");
  });

  test("users outside the directory's domains are neither accepted nor logged in: an unhosted domain, and a hosted one the directory is not for", async () => {
    const replies = await stack.inbound([PEOPLE.eve.mail, PEOPLE.olga.mail]);
    expect(replies[1]).toBe(`554 5.7.1 <${PEOPLE.eve.mail}>: Relay access denied`);
    expect(replies[2]).toMatch(new RegExp(`^550 5\\.1\\.1 <${PEOPLE.olga.mail.replace(".", "\\.")}>: Recipient address rejected: User unknown`));
    for (const p of [PEOPLE.eve, PEOPLE.olga]) {
      expect((await imap(p.mail, p.password)).error).toBe("authentication failed");
      expect((await submission(p.mail, p.password))[0]).toMatch(/^535 5\.7\.8 /);
    }
  });
});

test(`a user removed from the directory is refused at once by Postfix, and by Dovecot within ldap.cacheSeconds (${CACHE_SECONDS} s)`, async () => {
  // Logged in, so cached.
  expect((await imap(PEOPLE.gone.mail, PEOPLE.gone.password)).subjects).toEqual([]);
  const removed = ldapClient("ldapdelete", ["-x", "-H", LDAPS, "-D", ADMIN.dn, "-w", ADMIN.password, `uid=gone,ou=people,${SUFFIX}`]);
  expect(removed).toMatchObject({ status: 0 });
  const at = Date.now();
  expect((await stack.inbound([PEOPLE.gone.mail]))[1]).toMatch(/^550 5\.1\.1 <gone@example\.com>: Recipient address rejected: User unknown/);
  await stack.until("gone's login to be refused", async () => (await imap(PEOPLE.gone.mail, PEOPLE.gone.password)).error === "authentication failed", (CACHE_SECONDS + 10) * 1000);
  // Past the cache's lifetime, with the time a login and the polling take.
  expect(Date.now() - at).toBeLessThan((CACHE_SECONDS + 5) * 1000);
  expect((await submission(PEOPLE.gone.mail, PEOPLE.gone.password))[0]).toMatch(/^535 5\.7\.8 /);
});

describe("the directory's certificate is verified", () => {
  afterAll(async () => applyLdap({}));

  test("with a CA that did not sign it, directory users get a temporary failure, never a login or an unknown-user bounce; the stack config's mailbox goes on", async () => {
    await applyLdap({ caCertificate: wrongCa });
    const login = await imap(PEOPLE.dirk.mail, PEOPLE.dirk.password);
    expect(login.subjects).toBeUndefined();
    expect(login.response).toMatch(/^Temporary authentication failure\./);
    // Refused: Postfix 3.7 does not read Dovecot's temp_fail code and answers as for a bad password.
    expect((await submission(PEOPLE.dirk.mail, PEOPLE.dirk.password))[0]).toBe("535 5.7.8 Error: authentication failed: (reason unavailable)");
    // Mail waits at the sender's, to be retried, rather than bouncing.
    expect((await stack.inbound([PEOPLE.dirk.mail]))[1]).toBe(`451 4.3.0 <${PEOPLE.dirk.mail}>: Temporary lookup failure`);
    expect((await imap(ALICE.address, ALICE.password)).subjects).toBeDefined();
    const sinceReload = stack.log("dovecot").split("SIGHUP received").pop()!;
    expect(sinceReload).toMatch(/auth: Error: ldap\(\S+\): Can't connect to server: ldaps:\/\/127\.0\.0\.1/);
  });

  test("over ldap:// with StartTLS and the right CA, the directory user logs in and receives again", async () => {
    // Postfix's table is a runtime key file: the sync installs it from its parameter.
    expect(await applyLdap({ url: "ldap://127.0.0.1", startTls: true })).toContain("mailstack-sync: updated ldap/postfix-map.cf\n");
    expect(readFileSync(join(stack.paths.runtime, "ldap/postfix-map.cf"), "utf8")).toMatch(/^start_tls = yes$/m);
    const installed = statSync(join(stack.paths.runtime, "ldap/postfix-map.cf"));
    expect({ mode: (installed.mode & 0o777).toString(8), uid: installed.uid, gid: installed.gid }).toEqual({ mode: "640", uid: 0, gid: groupId("postfix") });
    expect((await imap(PEOPLE.dirk.mail, PEOPLE.dirk.password)).subjects?.length).toBeGreaterThan(0);
    await deliver(PEOPLE.dirk.mail, PEOPLE.dirk.mail, PEOPLE.dirk.password, "over StartTLS");
  });

  test("StartTLS with the wrong CA fails closed as ldaps:// does", async () => {
    await applyLdap({ url: "ldap://127.0.0.1", startTls: true, caCertificate: wrongCa });
    expect((await imap(PEOPLE.dirk.mail, PEOPLE.dirk.password)).response).toMatch(/^Temporary authentication failure\./);
    expect((await stack.inbound([PEOPLE.dirk.mail]))[1]).toBe(`451 4.3.0 <${PEOPLE.dirk.mail}>: Temporary lookup failure`);
  });
});
