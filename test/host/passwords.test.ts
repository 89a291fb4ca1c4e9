/**
 * Password hashes made by the core, verified by the Dovecot that will check them: first by
 * `doveadm pw -t`, then by a Dovecot started on the rendered dovecot.conf and the users file
 * the sync installs, inside a network namespace of its own.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BCRYPT_COST, hashPassword, parseConfig } from "@mailstack/core";
import { fullConfig, SAMPLE_HASH } from "../support/fixtures";
import { installRuntimeFiles, type RenderedHost, renderHost, requireRoot, requireTools, run, runOk, TEST_PARAMS } from "../support/tools";

requireTools("doveadm", "doveconf", "ip", "openssl");

const CONTEXT = TEST_PARAMS.ssmPath;

function verify(hash: string, password: string) {
  const r = run("doveadm", ["pw", "-t", hash, "-p", password]);
  return { verified: r.status === 0 && r.stdout.includes("(verified)"), output: r.stdout + r.stderr };
}

describe("hashPassword() as Dovecot sees it (doveadm pw -t)", () => {
  const passwords: [string, string][] = [
    ["a plain passphrase", "correct horse battery staple"],
    ["shell and passwd-file metacharacters", `p@ss:w0rd "quoted" $HOME \\ 'single' ;|&`],
    ["non-ASCII", "pässwörd ✓ 密码 long enough"],
    ["exactly 72 bytes, bcrypt's limit", "x".repeat(71) + "y"],
  ];

  test.each(passwords)("%s verifies, and a wrong password does not", (_label, password) => {
    const hash = hashPassword(password, "alice@example.com", CONTEXT);
    expect(hash).toMatch(new RegExp(`^\\{BLF-CRYPT\\}\\$2b\\$${BCRYPT_COST}\\$`));
    const good = verify(hash, password);
    expect(good).toEqual({ verified: true, output: expect.stringContaining("(verified)") });
    // (Appending is no test at 72 bytes: bcrypt ignores what follows, which is why the config refuses longer passwords.)
    const last = [...password].pop() === "y" ? "z" : "y";
    const wrongs = [[...password].slice(0, -1).join("") + last, [...password].slice(0, -1).join(""), password.toUpperCase(), password.toLowerCase(), ""];
    for (const wrong of wrongs) {
      if (wrong === password) continue;
      expect({ wrong, ...verify(hash, wrong) }).toMatchObject({ wrong, verified: false });
    }
  });

  test("the hash is stable for an address and context, and differs by address and by context", () => {
    const a = hashPassword("correct horse battery staple", "alice@example.com", CONTEXT);
    expect(hashPassword("correct horse battery staple", "alice@example.com", CONTEXT)).toBe(a);
    const otherAddress = hashPassword("correct horse battery staple", "bob@example.com", CONTEXT);
    const otherContext = hashPassword("correct horse battery staple", "alice@example.com", "/mailstack/other/mail");
    expect(new Set([a, otherAddress, otherContext]).size).toBe(3);
    // Different salts, same password: Dovecot verifies every one of them.
    for (const h of [a, otherAddress, otherContext]) expect(verify(h, "correct horse battery staple").verified).toBe(true);
  });

  test("the fixtures' pre-hashed password is a hash Dovecot verifies", () => {
    expect(verify(SAMPLE_HASH, "not a real password: mailstack plan").verified).toBe(true);
    expect(verify(SAMPLE_HASH, "not a real password: mailstack plan.").verified).toBe(false);
  });
});

describe("the users file, read by a running Dovecot on the rendered dovecot.conf", () => {
  requireRoot("Dovecot runs in a network namespace of its own");
  const input = fullConfig();
  const config = parseConfig(input);
  const alicePassword = String(input.mailboxes[0].password);
  let host: RenderedHost;
  let ns: string;
  let wrapper: string;
  let started = false;

  const doveadm = (...args: string[]) => run("doveadm", ["-c", wrapper, ...args]);

  beforeAll(() => {
    host = renderHost(config);
    const key = generateKeyPairSync("rsa", { modulusLength: 2048, privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });
    // The ownership and mode the sync gives them: Dovecot's auth process reads users as group dovecot.
    installRuntimeFiles(host, input, config, { dkimPrivateKeyPem: key.privateKey, tlsPrivateKeyPem: readFileSync(host.env.paths.tlsKey, "utf8") });
    // Postfix's queue holds the sockets Dovecot serves it; the package creates it on a host.
    mkdirSync(join(host.env.paths.postfixQueue, "private"), { recursive: true });
    // The rendered file, plus only what keeps this instance apart from any other Dovecot here.
    wrapper = join(host.root, "dovecot-test.conf");
    writeFileSync(
      wrapper,
      [
        `!include ${host.path("/etc/dovecot/dovecot.conf")}`,
        `state_dir = ${host.root}/state`,
        `instance_name = ${host.root.split("/").pop()}`,
        `log_path = ${host.root}/dovecot.log`,
        "",
      ].join("\n"),
    );
    mkdirSync(join(host.root, "state"));
    ns = `ms-dc-${process.pid}`;
    runOk("ip", ["netns", "add", ns]);
    runOk("ip", ["netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
    // Dovecot keeps its stdio open after daemonizing: never pipe it.
    const r = run("ip", ["netns", "exec", ns, "dovecot", "-c", wrapper], { stdio: ["ignore", "ignore", "ignore"] });
    if (r.status !== 0) {
      throw new Error(`dovecot did not start (status ${r.status}):\n${readLog()}`);
    }
    started = true;
    // The master answers once its auth process listens.
    for (let i = 0; i < 100 && doveadm("auth", "lookup", "alice@example.com").status !== 0; i++) runOk("sleep", ["0.1"]);
  });

  const readLog = () => {
    try {
      return readFileSync(`${host.root}/dovecot.log`, "utf8");
    } catch {
      return "(no log)";
    }
  };

  afterAll(() => {
    try {
      if (started) {
        const pid = readFileSync(join(host.env.paths.dovecotBase, "master.pid"), "utf8").trim();
        run("kill", [pid]);
        for (let i = 0; i < 100 && run("kill", ["-0", pid]).status === 0; i++) run("sleep", ["0.1"]);
      }
    } finally {
      if (ns) run("ip", ["netns", "delete", ns]);
      host?.cleanup();
    }
  });

  test("Dovecot started on the rendered configuration and logged no error or warning", () => {
    expect(started).toBe(true);
    expect(readLog()).not.toMatch(/(Error|Warning|Fatal|Panic):/);
  });

  test("a mailbox logs in with its password, hashed by the core", () => {
    const r = doveadm("auth", "test", "alice@example.com", alicePassword);
    expect(r.stdout + r.stderr).toContain("auth succeeded");
    expect(r.status).toBe(0);
  });

  test("the login name is case-insensitive, as addresses are", () => {
    const r = doveadm("auth", "test", "Alice@EXAMPLE.com", alicePassword);
    expect(r.stdout + r.stderr).toContain("auth succeeded");
  });

  test("a pre-hashed mailbox logs in with the password behind its hash", () => {
    const r = doveadm("auth", "test", "bob@example.com", "not a real password: mailstack plan");
    expect(r.stdout + r.stderr).toContain("auth succeeded");
  });

  test("a wrong password and an unknown user are refused", () => {
    expect(doveadm("auth", "test", "alice@example.com", alicePassword + "x").status).not.toBe(0);
    expect(doveadm("auth", "test", "nobody@example.com", alicePassword).status).not.toBe(0);
  });

  test("userdb fields: the vmail uid/gid, the home below the mail directory, the quota from the config", () => {
    const fields = (user: string) =>
      Object.fromEntries(
        runOk("doveadm", ["-c", wrapper, "user", user])
          .stdout.split("\n")
          .filter((l) => l.trim())
          .map((l) => l.trim().split(/\s+/, 2) as [string, string]),
      );
    const alice = fields("alice@example.com");
    expect(alice).toMatchObject({
      uid: String(host.env.vmail.uid),
      gid: String(host.env.vmail.gid),
      home: `${host.env.paths.vmail}/example.com/alice`,
      quota_rule: "*:storage=10240M",
    });
    const bob = fields("bob@example.com");
    expect(bob.home).toBe(`${host.env.paths.vmail}/example.com/bob`);
    expect(bob.quota_rule).toBeUndefined();
  });
});
