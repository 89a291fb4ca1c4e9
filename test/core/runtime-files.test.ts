import { createHash, generateKeyPairSync } from "node:crypto";
import {
  hostFiles,
  keyFileNames,
  keyParameterName,
  type MailConfig,
  type MailConfigInput,
  type Manifest,
  MAX_RESTIC_PASSWORD_LENGTH,
  PARAMETER_LIMIT,
  parseConfig,
  PRODUCTION_ENV,
  type RuntimeFile,
  runtimeDelivery,
  RUNTIME_FILE_RULES,
  runtimeFileRule,
  runtimeFileTable,
  runtimeFiles,
  type RuntimeObjectLocation,
  type RuntimeSecrets,
} from "@mailstack/core";
import { fullConfig, minimalConfig, SAMPLE_HASH } from "../support/fixtures";

const PASSWORD = "correct horse battery staple";
const DKIM_PEM = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();

/** What hashPassword yields: {BLF-CRYPT}$2b$10$ + 53 characters (71 in all). */
const bcryptLike = (i: number) => `{BLF-CRYPT}$2b$10$${String(i).padStart(53, "A")}`;
/** A well-formed hash of the largest accepted length. */
const LONGEST_HASH = "{SHA512-CRYPT}$6$rounds=" + "5".repeat(32) + "$" + "s".repeat(16) + "$" + "h".repeat(86);

const TLS_PEM = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "sec1", format: "pem" }).toString();
/** As long as MailBackup's, and unlike anything else in the files. */
const RESTIC_PASSWORD = "Zq3vT8kW1pLx9cRb4NdY7hGm2sJf6aUe0oKi5tHw8yQn3Vc1";

function secretsFor(
  config: MailConfig,
  hashFor: (m: MailConfig["mailboxes"][number]) => string,
  dkimPrivateKeyPem = DKIM_PEM,
  tlsPrivateKeyPem = TLS_PEM,
  resticPassword = RESTIC_PASSWORD,
): RuntimeSecrets {
  return { passwordHashes: new Map(config.mailboxes.map((m) => [m.address, hashFor(m)])), dkimPrivateKeyPem, tlsPrivateKeyPem, resticPassword };
}
const file = (files: RuntimeFile[], name: string) => {
  const found = files.find((f) => f.name === name);
  if (!found) throw new Error(`no runtime file ${name}`);
  return found;
};
const lines = (content: string) => {
  expect(content.endsWith("\n") || content === "").toBe(true);
  return content === "" ? [] : content.slice(0, -1).split("\n");
};

describe("runtimeFiles", () => {
  const config = parseConfig(fullConfig());
  const hashes = new Map([
    ["alice@example.com", bcryptLike(1)],
    ["bob@example.com", SAMPLE_HASH],
  ]);
  const files = runtimeFiles(config, {
    passwordHashes: hashes,
    dkimPrivateKeyPem: "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----",
    tlsPrivateKeyPem: "-----BEGIN EC PRIVATE KEY-----\nTLS\n-----END EC PRIVATE KEY-----\n",
    resticPassword: RESTIC_PASSWORD,
  });

  test("the set of files, sorted by name, with owners, reloads and which are keys", () => {
    expect(files.map((f) => [f.name, f.mode, f.owner, f.group, f.reload.join(" "), f.key])).toEqual([
      ["aliases", "0644", "root", "root", "postfix.service", false],
      ["app-passwords", "0640", "root", "dovecot", "dovecot.service", false],
      // Read by the backup job at each run: nothing to reload.
      ["backup/keep", "0644", "root", "root", "", false],
      ["backup/restic-password", "0600", "root", "root", "", true],
      ["certificate-names", "0644", "root", "root", "", false],
      ["dkim-selectors", "0644", "root", "root", "rspamd.service", false],
      ["dkim/mail.key", "0640", "root", "_rspamd", "rspamd.service", true],
      ["domains", "0644", "root", "root", "postfix.service", false],
      ["mailboxes", "0644", "root", "root", "postfix.service", false],
      ["nftables-admin.nft", "0644", "root", "root", "nftables.service", false],
      ["recipient-access", "0644", "root", "root", "postfix.service", false],
      ["sender-logins", "0644", "root", "root", "postfix.service", false],
      ["tls/key.pem", "0600", "root", "root", "", true],
      ["users", "0640", "root", "dovecot", "dovecot.service", false],
      ["www/.well-known/mta-sts.txt", "0644", "root", "root", "", false],
      ["www/autodiscover/autodiscover.xml", "0644", "root", "root", "", false],
      ["www/mail/config-v1.1.xml", "0644", "root", "root", "", false],
    ]);
    // Booleans, not merely truthy or falsy values.
    for (const f of files) expect(typeof f.key).toBe("boolean");
  });

  test("the TLS key, and every name the certificate must cover", () => {
    expect(file(files, "tls/key.pem").content).toBe("-----BEGIN EC PRIVATE KEY-----\nTLS\n-----END EC PRIVATE KEY-----\n");
    expect(lines(file(files, "certificate-names").content)).toEqual([
      "mail.example.com",
      "mta-sts.example.com",
      "autoconfig.example.com",
      "autodiscover.example.com",
      "mta-sts.example.org",
      "autoconfig.example.org",
      "autodiscover.example.org",
    ]);
  });

  test("web files: the MTA-STS policy and client settings naming the host and its TLS ports", () => {
    expect(file(files, "www/.well-known/mta-sts.txt").content).toBe("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 604800\n");
    const thunderbird = file(files, "www/mail/config-v1.1.xml").content;
    expect(thunderbird).toContain("<domain>example.com</domain>\n    <domain>example.org</domain>");
    // fullConfig offers POP3S.
    for (const [type, port, socket] of [["imap", 993, "SSL"], ["pop3", 995, "SSL"], ["smtp", 465, "SSL"], ["smtp", 587, "STARTTLS"]]) {
      expect(thunderbird).toMatch(new RegExp(`type="${type}">\\s*<hostname>mail\\.example\\.com</hostname>\\s*<port>${port}</port>\\s*<socketType>${socket}</socketType>`));
    }
    expect(thunderbird).not.toMatch(/<port>(143|110|25)<\/port>/);
    const outlook = file(files, "www/autodiscover/autodiscover.xml").content;
    expect(outlook.match(/<Type>[A-Z0-9]+<\/Type>\s*<Server>mail\.example\.com<\/Server>\s*<Port>\d+<\/Port>/g)!.map((m) => m.replace(/\s+/g, " "))).toEqual([
      "<Type>IMAP</Type> <Server>mail.example.com</Server> <Port>993</Port>",
      "<Type>POP3</Type> <Server>mail.example.com</Server> <Port>995</Port>",
      "<Type>SMTP</Type> <Server>mail.example.com</Server> <Port>465</Port>",
    ]);
    const minimal = parseConfig(minimalConfig());
    const minimalFiles = runtimeFiles(minimal, secretsFor(minimal, () => bcryptLike(1)));
    expect(file(minimalFiles, "www/mail/config-v1.1.xml").content).not.toContain("pop3");
    expect(file(minimalFiles, "www/autodiscover/autodiscover.xml").content).not.toContain("POP3");
  });

  test("the restic password is readable by root alone; the keep policy holds restic forget's options", () => {
    expect(file(files, "backup/restic-password").content).toBe(`${RESTIC_PASSWORD}\n`);
    expect(lines(file(files, "backup/keep").content)).toEqual(["--keep-daily=7", "--keep-weekly=4", "--keep-monthly=12"]);
    const some = parseConfig({ ...fullConfig(), backupKeep: { daily: 3, weekly: 0 } });
    expect(lines(file(runtimeFiles(some, secretsFor(some, () => bcryptLike(1))), "backup/keep").content)).toEqual(["--keep-daily=3", "--keep-monthly=12"]);
  });

  test("the SSH sources for the host firewall: nft commands filling the admin sets", () => {
    // fullConfig lists one IPv4 admin network and no IPv6 one.
    expect(file(files, "nftables-admin.nft").content).toBe(
      "# Sources allowed to reach SSH (adminCidrs); none means SSH is closed.\n" + "add element inet mailstack admin_v4 { 203.0.113.0/24 }\n",
    );
  });

  test("users file: address:{HASH}:::::: and the quota rule, none when unlimited", () => {
    expect(file(files, "users").content).toBe(
      `alice@example.com:${bcryptLike(1)}::::::userdb_quota_rule=*:storage=10240M\n` + `bob@example.com:${SAMPLE_HASH}::::::\n`,
    );
  });

  test("users file: passwd-file fields are in the right places", () => {
    for (const line of lines(file(files, "users").content)) {
      const fields = line.split(":");
      // user, password, uid, gid, gecos, home, shell, extra fields (which may contain ':')
      expect(fields.length).toBeGreaterThanOrEqual(8);
      expect(fields[0]).toMatch(/^[a-z]+@example\.com$/);
      expect(fields[1]).toMatch(/^\{[A-Z0-9-]+\}\$/);
      expect(fields.slice(2, 7)).toEqual(["", "", "", "", ""]);
    }
  });

  test("users file: default quota is 5G", () => {
    const minimal = parseConfig(minimalConfig());
    const users = file(runtimeFiles(minimal, secretsFor(minimal, () => bcryptLike(2))), "users");
    expect(users.content).toBe(`alice@example.com:${bcryptLike(2)}::::::userdb_quota_rule=*:storage=5120M\n`);
  });

  test("a mailbox without hash is an error", () => {
    expect(() => runtimeFiles(config, { passwordHashes: new Map([["alice@example.com", bcryptLike(1)]]), dkimPrivateKeyPem: "K", tlsPrivateKeyPem: "T", resticPassword: RESTIC_PASSWORD })).toThrow("no password hash for bob@example.com");
  });

  test.each(["{BLF-CRYPT}x:y", "{BLF-CRYPT}x\nroot:{PLAIN}x", "{BLF-CRYPT}x y", ""])("a password hash that would add a field or a line (%j) is an error", (bad) => {
    const passwordHashes = new Map([...hashes, ["bob@example.com", bad]]);
    expect(() => runtimeFiles(config, { passwordHashes, dkimPrivateKeyPem: "K", tlsPrivateKeyPem: "T", resticPassword: RESTIC_PASSWORD })).toThrow('the password hash for bob@example.com is not one word of printable characters without ":"');
  });

  test("Postfix maps", () => {
    expect(file(files, "domains").content).toBe("example.com OK\nexample.org OK\n");
    expect(file(files, "mailboxes").content).toBe("alice@example.com OK\nbob@example.com OK\n");
    // The host name's own role addresses follow (tested below).
    expect(lines(file(files, "aliases").content).slice(0, 7)).toEqual([
      "abuse@example.com alice@example.com",
      "abuse@example.org alice@example.com",
      "alice@example.org alice@example.com",
      "dmarc@example.com alice@example.com",
      "info@example.com alice@example.com,bob@example.com",
      "postmaster@example.com alice@example.com",
      "postmaster@example.org alice@example.com",
    ]);
  });

  test("DKIM key gets a final newline, and selectors cover every domain", () => {
    expect(file(files, "dkim/mail.key").content).toBe("-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n");
    const withNewline = runtimeFiles(config, { passwordHashes: hashes, dkimPrivateKeyPem: "PEM\n", tlsPrivateKeyPem: "T", resticPassword: RESTIC_PASSWORD });
    expect(file(withNewline, "dkim/mail.key").content).toBe("PEM\n");
    expect(file(files, "dkim-selectors").content).toBe("example.com mail\nexample.org mail\n");
    const s2 = parseConfig({ ...fullConfig(), dkimSelector: "s2" });
    const s2files = runtimeFiles(s2, secretsFor(s2, () => bcryptLike(3)));
    expect(s2files.map((f) => f.name)).toContain("dkim/s2.key");
    expect(file(s2files, "dkim-selectors").content).toBe("example.com s2\nexample.org s2\n");
  });

  describe("the host name's role addresses", () => {
    const hostLines = (content: string) => lines(content).filter((l) => /@(mail\.example\.com|localhost) /.test(l));

    test("root, postmaster and mailer-daemon of the host name and localhost reach the postmaster, abuse the abuse address; nothing else is there", () => {
      expect(hostLines(file(files, "aliases").content)).toEqual(
        ["mail.example.com", "localhost"].flatMap((d) => [`root@${d} alice@example.com`, `postmaster@${d} alice@example.com`, `mailer-daemon@${d} alice@example.com`, `abuse@${d} alice@example.com`]),
      );
    });

    test("an explicit postmaster and abuse address are followed", () => {
      const c = parseConfig({ ...fullConfig(), postmaster: "info@example.com", abuse: "bob@example.com" });
      const host = hostLines(file(runtimeFiles(c, secretsFor(c, () => bcryptLike(4))), "aliases").content);
      expect(host).toContain("root@mail.example.com info@example.com");
      expect(host).toContain("abuse@mail.example.com bob@example.com");
      expect(host).toContain("abuse@localhost bob@example.com");
    });
  });

  describe("sender-logins", () => {
    const loginsOf = (input: MailConfigInput) => {
      const c = parseConfig(input);
      const content = file(runtimeFiles(c, secretsFor(c, () => bcryptLike(5))), "sender-logins").content;
      const map = new Map<string, string[]>();
      for (const line of lines(content)) {
        const [address, logins, ...rest] = line.split(" ");
        expect(rest).toEqual([]);
        expect(map.has(address)).toBe(false);
        map.set(address, logins.split(","));
      }
      return { content, map };
    };

    test("exact map for fullConfig", () => {
      expect(loginsOf(fullConfig()).content).toBe(
        [
          "abuse@example.com alice@example.com",
          "abuse@example.org alice@example.com",
          "alice@example.com alice@example.com",
          "alice@example.org alice@example.com",
          "bob@example.com bob@example.com",
          "dmarc@example.com alice@example.com",
          "info@example.com alice@example.com,bob@example.com",
          "postmaster@example.com alice@example.com",
          "postmaster@example.org alice@example.com",
        ]
          .map((l) => `${l}\n`)
          .join(""),
      );
    });

    test("a mailbox may send as itself and its aliases, group members as the group, chains resolve", () => {
      const { map } = loginsOf({
        domain: "example.com",
        extraDomains: ["example.org"],
        allowExternalForwarding: true,
        mailboxes: [
          { address: "alice@example.com", password: PASSWORD, aliases: ["a@example.com", "alice@example.org"] },
          { address: "bob@example.com", password: PASSWORD },
          { address: "carol@example.com", password: PASSWORD },
        ],
        aliases: [
          // Declared before the aliases it goes through.
          { address: "all@example.com", to: ["team@example.com", "carol@example.com"] },
          { address: "team@example.com", to: ["a@example.com", "bob@example.com"] },
          { address: "sales@example.org", to: ["alice@example.org", "partner@example.net"] },
          { address: "outside@example.com", to: ["partner@example.net"] },
          { address: "deep@example.com", to: ["all@example.com"] },
        ],
      });
      expect(map.get("alice@example.com")).toEqual(["alice@example.com"]);
      expect(map.get("bob@example.com")).toEqual(["bob@example.com"]);
      expect(map.get("a@example.com")).toEqual(["alice@example.com"]);
      expect(map.get("alice@example.org")).toEqual(["alice@example.com"]);
      expect(map.get("team@example.com")).toEqual(["alice@example.com", "bob@example.com"]);
      expect(map.get("all@example.com")).toEqual(["alice@example.com", "bob@example.com", "carol@example.com"]);
      expect(map.get("deep@example.com")).toEqual(["alice@example.com", "bob@example.com", "carol@example.com"]);
      // Outside members cannot log in here; only local ones may send as the group.
      expect(map.get("sales@example.org")).toEqual(["alice@example.com"]);
      // An alias with no local recipient has no sender at all.
      expect(map.has("outside@example.com")).toBe(false);
      expect(map.get("postmaster@example.org")).toEqual(["alice@example.com"]);
      // Nobody else may send as anything: every login is a mailbox.
      for (const logins of map.values()) for (const l of logins) expect(["alice@example.com", "bob@example.com", "carol@example.com"]).toContain(l);
    });

    test("a diamond of aliases lists each mailbox once", () => {
      const { map } = loginsOf({
        ...minimalConfig(),
        mailboxes: [...minimalConfig().mailboxes, { address: "bob@example.com", password: PASSWORD }],
        aliases: [
          { address: "top@example.com", to: ["left@example.com", "right@example.com"] },
          { address: "left@example.com", to: ["bottom@example.com", "alice@example.com"] },
          { address: "right@example.com", to: ["bottom@example.com"] },
          { address: "bottom@example.com", to: ["bob@example.com", "alice@example.com"] },
        ],
      });
      expect(map.get("top@example.com")).toEqual(["alice@example.com", "bob@example.com"]);
      expect(map.get("right@example.com")).toEqual(["alice@example.com", "bob@example.com"]);
    });
  });
});

describe("disabled mailboxes and catch-alls", () => {
  const PARAMS = { region: "eu-west-1", ssmPath: "/mailstack/prod/mail", dataVolumeId: "vol-0123456789abcdef0", backupRepository: "s3:https://s3.eu-west-1.amazonaws.com/b/restic" };
  /** fullConfig with carol (her own alias carol@example.org) in the team alias, `carol` and `catchAll` as given. */
  const input = (carol: Partial<MailConfigInput["mailboxes"][number]> = {}, catchAll?: Record<string, string>): MailConfigInput => ({
    ...fullConfig(),
    mailboxes: [...fullConfig().mailboxes, { address: "carol@example.com", password: PASSWORD, aliases: ["carol@example.org"], ...carol }],
    aliases: [...fullConfig().aliases!, { address: "team@example.com", to: ["carol@example.com", "bob@example.com"] }, { address: "all@example.com", to: ["team@example.com", "carol@example.org"] }],
    ...(catchAll ? { catchAll } : {}),
  });
  const render = (i: MailConfigInput) => {
    const c = parseConfig(i);
    return { config: c, files: runtimeFiles(c, secretsFor(c, (m) => bcryptLike(m.index))) };
  };
  const content = (i: MailConfigInput, name: string) => file(render(i).files, name).content;

  test("a disabled mailbox leaves the users file and the mailboxes map, and its logins the sender map", () => {
    const on = render(input());
    const off = render(input({ enabled: false }));
    expect(lines(file(on.files, "users").content).map((l) => l.split(":")[0])).toEqual(["alice@example.com", "bob@example.com", "carol@example.com"]);
    expect(lines(file(off.files, "users").content).map((l) => l.split(":")[0])).toEqual(["alice@example.com", "bob@example.com"]);
    expect(lines(file(off.files, "mailboxes").content)).toEqual(["alice@example.com OK", "bob@example.com OK"]);
    const logins = lines(file(off.files, "sender-logins").content);
    expect(logins.filter((l) => l.includes("carol"))).toEqual([]);
    expect(logins).toContain("team@example.com bob@example.com");
    expect(logins).toContain("all@example.com bob@example.com");
  });

  test("aliases skip it where others remain; its own aliases keep it, so that the host's own mail to them bounces", () => {
    const aliases = lines(content(input({ enabled: false }), "aliases"));
    expect(aliases).toContain("team@example.com bob@example.com");
    expect(aliases).toContain("all@example.com team@example.com");
    expect(aliases).toContain("carol@example.org carol@example.com");
    // Enabled, the same aliases list her.
    expect(lines(content(input(), "aliases"))).toContain("team@example.com carol@example.com,bob@example.com");
  });

  test("the recipient access map refuses it and its own aliases with its reply, and is empty while every mailbox is enabled", () => {
    expect(content(input(), "recipient-access")).toBe("");
    expect(content(input({ enabled: false }), "recipient-access")).toBe(
      "carol@example.com 550 5.2.1 Mailbox disabled, not accepting messages\ncarol@example.org 550 5.2.1 Mailbox disabled, not accepting messages\n",
    );
    expect(content(input({ enabled: false, disabledReply: "  Carol has left; write to team@example.com " }), "recipient-access")).toBe(
      "carol@example.com 550 5.2.1 Carol has left; write to team@example.com\ncarol@example.org 550 5.2.1 Carol has left; write to team@example.com\n",
    );
    // The reply waits in the config while she is enabled.
    expect(content(input({ disabledReply: "Carol has left" }), "recipient-access")).toBe("");
  });

  test("a catch-all comes after the exact addresses, which include each mailbox of its domain mapped to itself; it grants no sender", () => {
    const i = input({ enabled: false }, { "example.org": "info@example.com" });
    const aliases = lines(content(i, "aliases"));
    expect(aliases.filter((l) => l.startsWith("@"))).toEqual(["@example.org info@example.com"]);
    // Only example.org has a catch-all, and no mailbox is there: nothing is mapped to itself.
    expect(aliases.filter((l) => l.split(" ")[0] === l.split(" ")[1])).toEqual([]);
    const both = input({ enabled: false }, { "example.org": "info@example.com", "example.com": "bob@example.com" });
    const all = lines(content(both, "aliases"));
    expect(all.filter((l) => l.startsWith("@"))).toEqual(["@example.com bob@example.com", "@example.org info@example.com"]);
    // Every mailbox of example.com, a disabled one included (its mail must not reach the catch-all).
    expect(all.filter((l) => l.split(" ")[0] === l.split(" ")[1])).toEqual(["alice@example.com alice@example.com", "bob@example.com bob@example.com", "carol@example.com carol@example.com"]);
    // The role addresses and the host name's stay exact.
    expect(all).toContain("postmaster@example.com alice@example.com");
    expect(all).toContain("root@mail.example.com alice@example.com");
    // Nobody may send as the addresses the catch-all collects: no @domain key, nothing added.
    expect(content(both, "sender-logins")).toBe(content(input({ enabled: false }), "sender-logins"));
    expect(lines(content(both, "sender-logins")).filter((l) => l.startsWith("@"))).toEqual([]);
  });

  test("disabling, enabling, a reply and a catch-all change runtime files only: the host bundle stays byte for byte", () => {
    const host = (i: MailConfigInput) => hostFiles(parseConfig(i), PARAMS).map((f) => [f.path, f.content]);
    const base = host(input());
    expect(host(input({ enabled: false, disabledReply: "Carol has left" }))).toEqual(base);
    expect(host(input({}, { "example.com": "alice@example.com" }))).toEqual(base);
    // Which runtime files change: the users file and the Postfix maps, nothing else.
    const changed = (a: MailConfigInput, b: MailConfigInput) => {
      const before = new Map(render(a).files.map((f) => [f.name, f.content]));
      return render(b).files.filter((f) => before.get(f.name) !== f.content).map((f) => f.name);
    };
    expect(changed(input(), input({ enabled: false }))).toEqual(["aliases", "mailboxes", "recipient-access", "sender-logins", "users"]);
    expect(changed(input(), input({}, { "example.com": "alice@example.com" }))).toEqual(["aliases"]);
  });

  test("main.cf and master.cf refuse what the recipient access map lists, on port 25 before the unknown-user check and on submission before the login permits", () => {
    const files = hostFiles(parseConfig(input()), PARAMS);
    const main = files.find((f) => f.path === "/etc/postfix/main.cf")!.content;
    const access = `check_recipient_access texthash:${PRODUCTION_ENV.paths.runtime}/recipient-access`;
    expect(main).toMatch(new RegExp(`^smtpd_recipient_restrictions = reject_non_fqdn_recipient, reject_unknown_recipient_domain, ${access}, reject_unlisted_recipient, `, "m"));
    const master = files.find((f) => f.path === "/etc/postfix/master.cf")!.content;
    const submission = `-o smtpd_recipient_restrictions=reject_non_fqdn_recipient,check_recipient_access,texthash:${PRODUCTION_ENV.paths.runtime}/recipient-access,permit_sasl_authenticated,reject`;
    expect(master.split("\n").filter((l) => l.includes("smtpd_recipient_restrictions"))).toEqual([`  ${submission}`, `  ${submission}`]);
  });
});


/** A config with n mailboxes whose addresses are as long as allowed and whose credentials alternate. */
function bigConfig(n: number): MailConfigInput {
  const longDomain = `${"d".repeat(63)}.${"e".repeat(63)}.example`;
  const address = (i: number, domain = longDomain) => `${"m".repeat(56)}${String(i).padStart(8, "0")}@${domain}`;
  const mailboxes: MailConfigInput["mailboxes"] = [];
  for (let i = 0; i < n; i++) {
    mailboxes.push({
      address: address(i),
      ...(i % 2 === 0 ? { password: `${PASSWORD} ${i}` } : { passwordHash: i % 4 === 1 ? LONGEST_HASH : SAMPLE_HASH }),
      quota: i % 3 === 0 ? "unlimited" : "1023T",
      aliases: i % 5 === 0 ? [address(i, "example.com")] : [],
    });
  }
  const aliases: NonNullable<MailConfigInput["aliases"]> = [];
  for (let g = 0; g * 10 < n; g++) {
    aliases.push({ address: `group${g}@example.com`, to: mailboxes.slice(g * 10, g * 10 + 10).map((m) => m.address) });
  }
  // One alias to everybody: a single line far longer than a parameter.
  aliases.push({ address: "everyone@example.com", to: mailboxes.map((m) => m.address) });
  return { domain: "example.com", extraDomains: [longDomain], mailboxes, aliases, dkimSelector: "a".repeat(63) };
}

const LOCATION: RuntimeObjectLocation = {
  bucket: "mail-backup-0a1b2c3",
  key: "host/mailstack/test/mail/runtime.json",
  endpoint: "https://s3.eu-west-1.amazonaws.com",
};
/** The files that are keys, for every config with the default DKIM selector. */
const KEY_FILES = ["backup/restic-password", "dkim/mail.key", "tls/key.pem"];
const sha256 = (content: string) => createHash("sha256").update(content, "utf8").digest("hex");
/** Base64 lines of a PEM body, long enough not to occur anywhere by chance. */
const pemBody = (pem: string) => pem.split("\n").filter((l) => l.length >= 32 && !l.startsWith("-----"));

/** runtimeDelivery's result, parsed as the host reads it. */
function deliver(files: RuntimeFile[], location = LOCATION) {
  const delivery = runtimeDelivery(files, location);
  const document = JSON.parse(delivery.object) as Record<string, unknown>;
  expect(Object.keys(document)).toEqual(["files"]);
  const names = delivery.parameters.map((p) => p.name);
  expect(new Set(names).size).toBe(names.length);
  return {
    ...delivery,
    values: new Map(delivery.parameters.map((p) => [p.name, p.value])),
    objectFiles: document.files as Record<string, string>,
    parsed: JSON.parse(delivery.manifest) as Manifest,
  };
}

/** Every file put back together as mailstack-sync does: from where the manifest says, checked against its hash. */
function reassemble(delivered: ReturnType<typeof deliver>): Map<string, string> {
  const out = new Map<string, string>();
  for (const entry of delivered.parsed.files) {
    const content =
      entry.source === "parameter"
        ? delivered.values.get(keyParameterName(entry.name))
        : entry.source === "object" && Object.hasOwn(delivered.objectFiles, entry.name)
          ? delivered.objectFiles[entry.name]
          : undefined;
    if (typeof content !== "string") throw new Error(`${entry.name} (${entry.source}) is not where the manifest says`);
    expect({ file: entry.name, sha256: sha256(content) }).toEqual({ file: entry.name, sha256: entry.sha256 });
    out.set(entry.name, content);
  }
  return out;
}

describe("the table of runtime files the host takes", () => {
  const configs = {
    minimal: parseConfig(minimalConfig()),
    full: parseConfig({ ...fullConfig(), adminCidrs: ["203.0.113.0/24", "2001:db8::/48"], dkimSelector: "s2026-a" }),
  };

  test.each(Object.keys(configs) as (keyof typeof configs)[])("every runtime file of the %s config takes its mode, owner, units and key from its one rule", (name) => {
    const config = configs[name];
    for (const f of runtimeFiles(config, secretsFor(config, () => bcryptLike(1)))) {
      const matching = RUNTIME_FILE_RULES.filter((r) => (r.pattern === undefined ? r.name === f.name : new RegExp(`^(?:${r.pattern})$`).test(f.name)));
      expect({ name: f.name, rules: matching.map((r) => [r.mode, r.owner, r.group, r.reload, r.key]) }).toEqual({ name: f.name, rules: [[f.mode, f.owner, f.group, f.reload, f.key]] });
      expect(runtimeFileRule(f.name)).toBe(matching[0]);
    }
  });

  test("the rules are sorted by name, each name once, each with a grammar; only the DKIM keys are a family", () => {
    const names = RUNTIME_FILE_RULES.map((r) => r.name);
    expect(names).toEqual([...names].sort());
    expect(new Set(names).size).toBe(names.length);
    expect(RUNTIME_FILE_RULES.filter((r) => r.pattern !== undefined).map((r) => r.name)).toEqual(["dkim/<selector>.key"]);
    expect(RUNTIME_FILE_RULES.filter((r) => r.key).map((r) => [r.name, r.grammar])).toEqual([
      ["backup/restic-password", "password"],
      ["dkim/<selector>.key", "pem"],
      ["ldap/dovecot-bind", "dovecot-ldap-bind"],
      ["ldap/postfix-map.cf", "postfix-ldap"],
      ["ses/smtp-credentials", "sasl-passwords"],
      ["tls/key.pem", "pem"],
    ]);
    // No setuid, setgid or sticky bit, nothing writable but by root, no owner but root.
    for (const r of RUNTIME_FILE_RULES) expect({ name: r.name, mode: r.mode, owner: r.owner }).toEqual({ name: r.name, mode: expect.stringMatching(/^0[0-7][0-5][0-5]$/), owner: "root" });
  });

  test("the DKIM keys' pattern takes every selector the config takes, and nothing else", () => {
    for (const selector of ["mail", "s2026-a", "a", "0", "x".repeat(63)]) {
      expect(runtimeFileRule(`dkim/${selector}.key`)?.name).toBe("dkim/<selector>.key");
      expect(() => parseConfig({ ...minimalConfig(), dkimSelector: selector })).not.toThrow();
    }
    for (const name of ["dkim/../users.key", "dkim/Mail.key", "dkim/-mail.key", "dkim/mail-.key", `dkim/${"x".repeat(64)}.key`, "dkim/mail.key.pem", "dkim/a/b.key", "dkim/.key", "xdkim/mail.key"]) {
      expect({ name, rule: runtimeFileRule(name) }).toEqual({ name, rule: undefined });
    }
  });

  test("the host bundle carries the table, as JSON the sync reads, and the settings name it", () => {
    const files = hostFiles(configs.full, { region: "eu-west-1", ssmPath: "/mailstack/prod/mail", dataVolumeId: "vol-0123456789abcdef0", backupRepository: "s3:https://s3.eu-west-1.amazonaws.com/b/restic" });
    const carried = files.find((f) => f.path === PRODUCTION_ENV.paths.runtimeTable);
    expect(carried).toEqual({ path: PRODUCTION_ENV.paths.runtimeTable, content: runtimeFileTable(), mode: "0644", owner: "root:root", reload: [] });
    expect(JSON.parse(runtimeFileTable())).toEqual({ version: 1, files: RUNTIME_FILE_RULES });
    expect(files.find((f) => f.path === "/etc/default/mailstack")!.content).toContain(`MAILSTACK_RUNTIME_TABLE="${PRODUCTION_ENV.paths.runtimeTable}"`);
  });
});

describe("runtimeDelivery", () => {
  const config = parseConfig(fullConfig());
  const files = runtimeFiles(config, secretsFor(config, (m) => bcryptLike(m.index)));

  test("keyParameterName: files/<name>, below the stack's path", () => {
    expect(keyParameterName("dkim/mail.key")).toBe("files/dkim/mail.key");
    expect(keyParameterName("backup/restic-password")).toBe("files/backup/restic-password");
  });

  test("each key is in one parameter of its own, files/<name>, with its exact content", () => {
    expect(DKIM_PEM).toContain("-----BEGIN PRIVATE KEY-----");
    expect(TLS_PEM).toContain("-----BEGIN EC PRIVATE KEY-----");
    expect(runtimeDelivery(files, LOCATION).parameters).toEqual([
      { name: "files/backup/restic-password", value: `${RESTIC_PASSWORD}\n` },
      { name: "files/dkim/mail.key", value: DKIM_PEM },
      { name: "files/tls/key.pem", value: TLS_PEM },
    ]);
  });

  test("every other file is in the object, with its exact content, and nothing of any key", () => {
    const { object, objectFiles } = deliver(files);
    const others = files.filter((f) => !KEY_FILES.includes(f.name));
    expect(others.length).toBe(files.length - KEY_FILES.length);
    expect(Object.keys(objectFiles)).toEqual(others.map((f) => f.name));
    for (const f of others) expect({ file: f.name, content: objectFiles[f.name] }).toEqual({ file: f.name, content: f.content });
    // The object really carries the day-to-day files.
    expect(objectFiles.users).toContain(`alice@example.com:${bcryptLike(0)}:`);
    expect(objectFiles.users).toContain(`bob@example.com:${bcryptLike(1)}:`);
    for (const needle of ["PRIVATE KEY", RESTIC_PASSWORD, ...pemBody(DKIM_PEM), ...pemBody(TLS_PEM)]) {
      expect({ needle, found: object.includes(needle) }).toEqual({ needle, found: false });
    }
  });

  test("the manifest: version 2, the object's location as given, every file with its source, SHA-256, mode, owner, group and reloads", () => {
    const { parsed, manifest } = deliver(files);
    expect(parsed).toEqual({
      version: 2,
      object: LOCATION,
      files: files.map((f) => ({
        name: f.name,
        source: KEY_FILES.includes(f.name) ? "parameter" : "object",
        sha256: sha256(f.content),
        mode: f.mode,
        owner: f.owner,
        group: f.group,
        reload: f.reload,
      })),
    });
    // A hash computed here from known content, not from what runtimeDelivery was given.
    expect(parsed.files.find((f) => f.name === "domains")!.sha256).toBe(sha256("example.com OK\nexample.org OK\n"));
    // The location is the one given, not a fixed one.
    const elsewhere = { bucket: "other-bucket", key: "host/other/path/runtime.json", endpoint: "https://s3.us-gov-west-1.amazonaws.com" };
    expect(deliver(files, elsewhere).parsed.object).toEqual(elsewhere);
    // Hashes and metadata only: no content of any file.
    for (const needle of ["PRIVATE KEY", RESTIC_PASSWORD, bcryptLike(0), bcryptLike(1), "example.com OK"]) {
      expect({ needle, found: manifest.includes(needle) }).toEqual({ needle, found: false });
    }
    expect(Buffer.byteLength(manifest)).toBeLessThanOrEqual(PARAMETER_LIMIT);
  });

  test("every file, put back together from its parameter or the object, matches the manifest", () => {
    const rebuilt = reassemble(deliver(files));
    expect(rebuilt).toEqual(new Map(files.map((f) => [f.name, f.content])));
  });

  test("keyFileNames: the signing DKIM key, the TLS key and the restic password, known from the config alone", () => {
    expect(keyFileNames(config)).toEqual(KEY_FILES);
    expect(keyFileNames(config)).toEqual(files.filter((f) => f.key).map((f) => f.name));

    // During a rotation three selectors are published, but only the signing one's key reaches the host.
    const rotating = parseConfig({ ...fullConfig(), dkimSelector: "s2", dkimNextSelector: "s3", dkimPreviousSelector: "s1" });
    expect([...rotating.dkimSelectors].sort()).toEqual(["s1", "s2", "s3"]);
    const rotatingFiles = runtimeFiles(rotating, secretsFor(rotating, () => SAMPLE_HASH));
    expect(rotatingFiles.filter((f) => f.name.startsWith("dkim/")).map((f) => f.name)).toEqual(["dkim/s2.key"]);
    const expected = ["backup/restic-password", "dkim/s2.key", "tls/key.pem"];
    expect(keyFileNames(rotating)).toEqual(expected);
    expect(rotatingFiles.filter((f) => f.key).map((f) => f.name)).toEqual(expected);
    expect(runtimeDelivery(rotatingFiles, LOCATION).parameters.map((p) => p.name)).toEqual(expected.map(keyParameterName));

    // Passwords not yet resolved (Pulumi outputs) change nothing.
    const input = bigConfig(20);
    const deferred: MailConfigInput = {
      ...input,
      mailboxes: input.mailboxes.map(({ password, passwordHash, ...m }) => (password !== undefined ? { ...m, password: {} } : { ...m, passwordHash: passwordHash === undefined ? undefined : {} })),
    };
    expect(keyFileNames(parseConfig(deferred))).toEqual(["backup/restic-password", `dkim/${"a".repeat(63)}.key`, "tls/key.pem"]);
  });

  test("the same parameters for 1 and for 1,000 mailboxes: only the object grows", () => {
    const delivered = [1, 1000].map((n) => {
      const big = parseConfig(bigConfig(n));
      expect(big.mailboxes).toHaveLength(n);
      // Worst case: every hash as long as its kind allows, the longest restic password accepted.
      const bigFiles = runtimeFiles(
        big,
        secretsFor(big, (m) => (m.credential === "password" ? bcryptLike(m.index) : LONGEST_HASH), DKIM_PEM, TLS_PEM, "R".repeat(MAX_RESTIC_PASSWORD_LENGTH)),
      );
      const d = deliver(bigFiles);
      expect(reassemble(d)).toEqual(new Map(bigFiles.map((f) => [f.name, f.content])));
      for (const p of d.parameters) expect(Buffer.byteLength(p.value)).toBeLessThanOrEqual(PARAMETER_LIMIT);
      expect(d.parameters.map((p) => p.name)).toEqual(keyFileNames(big).map(keyParameterName));
      return { d, users: lines(d.objectFiles.users) };
    });
    const [one, thousand] = delivered;
    const names = thousand.d.parameters.map((p) => p.name);
    expect(names).toEqual(one.d.parameters.map((p) => p.name));
    expect(names).toEqual(["files/backup/restic-password", `files/dkim/${"a".repeat(63)}.key`, "files/tls/key.pem"]);
    // The manifest lists files, not mailboxes: the same size either way.
    expect(thousand.d.parsed.files.map((f) => f.name)).toEqual(one.d.parsed.files.map((f) => f.name));
    expect(Buffer.byteLength(thousand.d.manifest)).toBe(Buffer.byteLength(one.d.manifest));
    // What would have taken dozens of parameters is in the object, intact.
    expect(Buffer.byteLength(thousand.d.object)).toBeGreaterThan(30 * PARAMETER_LIMIT);
    expect(one.users).toHaveLength(1);
    expect(thousand.users).toHaveLength(1000);
    const at = (i: number) => `${"m".repeat(56)}${String(i).padStart(8, "0")}@${"d".repeat(63)}.${"e".repeat(63)}.example`;
    expect(thousand.users[998]).toBe(`${at(998)}:${bcryptLike(998)}::::::userdb_quota_rule=*:storage=1072693248M`);
    // Given by hash, unlimited quota.
    expect(thousand.users[999]).toBe(`${at(999)}:${LONGEST_HASH}::::::`);
  });

  test("a key over PARAMETER_LIMIT bytes throws an error naming the file; one at the limit fits", () => {
    const small = parseConfig(minimalConfig());
    const deliverWith = (dkim: string, tls: string, restic: string) => runtimeDelivery(runtimeFiles(small, secretsFor(small, () => SAMPLE_HASH, dkim, tls, restic)), LOCATION);
    // Each file gets a final newline: PARAMETER_LIMIT − 1 characters make a file of exactly PARAMETER_LIMIT bytes.
    const atLimit = "K".repeat(PARAMETER_LIMIT - 1);
    const over = "K".repeat(PARAMETER_LIMIT);
    const fits = deliverWith(atLimit, atLimit, atLimit);
    for (const p of fits.parameters) expect(Buffer.byteLength(p.value)).toBe(PARAMETER_LIMIT);
    expect(() => deliverWith(over, TLS_PEM, RESTIC_PASSWORD)).toThrow(`runtime file dkim/mail.key is over ${PARAMETER_LIMIT} bytes`);
    expect(() => deliverWith(DKIM_PEM, over, RESTIC_PASSWORD)).toThrow(`runtime file tls/key.pem is over ${PARAMETER_LIMIT} bytes`);
    expect(() => deliverWith(DKIM_PEM, TLS_PEM, over)).toThrow(`runtime file backup/restic-password is over ${PARAMETER_LIMIT} bytes`);
    // Bytes, as SSM counts them, not characters.
    expect(() => deliverWith("é".repeat(PARAMETER_LIMIT / 2), TLS_PEM, RESTIC_PASSWORD)).toThrow("runtime file dkim/mail.key is over");
  });

  test("a file that is not a key has no such limit: it goes whole into the object", () => {
    const small = parseConfig(minimalConfig());
    const hash = "x".repeat(4 * PARAMETER_LIMIT);
    const smallFiles = runtimeFiles(small, secretsFor(small, () => hash));
    const d = deliver(smallFiles);
    expect(d.objectFiles.users).toBe(`alice@example.com:${hash}::::::userdb_quota_rule=*:storage=5120M\n`);
    expect(d.parameters.map((p) => p.name)).toEqual(KEY_FILES.map(keyParameterName));
  });
});
