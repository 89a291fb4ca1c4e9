import { createHash, generateKeyPairSync } from "node:crypto";
import {
  checkPasswordHash,
  hashPassword,
  type MailConfig,
  type MailConfigInput,
  type Manifest,
  MAX_PASSWORD_HASH_LENGTH,
  MAX_RESTIC_PASSWORD_LENGTH,
  PART_LIMIT,
  type ParameterLayout,
  parameterLayout,
  parameterValues,
  parseConfig,
  partName,
  type RuntimeFile,
  runtimeFiles,
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
const RESTIC_PASSWORD = "r".repeat(48);

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

  test("the set of files, sorted by name, with owners and reloads", () => {
    expect(files.map((f) => [f.name, f.mode, f.owner, f.group, f.reload.join(" ")])).toEqual([
      ["aliases", "0644", "root", "root", "postfix.service"],
      // Read by the backup job at each run: nothing to reload.
      ["backup/keep", "0644", "root", "root", ""],
      ["backup/restic-password", "0600", "root", "root", ""],
      ["certificate-names", "0644", "root", "root", ""],
      ["dkim-selectors", "0644", "root", "root", "rspamd.service"],
      ["dkim/mail.key", "0640", "root", "_rspamd", "rspamd.service"],
      ["domains", "0644", "root", "root", "postfix.service"],
      ["local-aliases", "0644", "root", "root", "postfix.service"],
      ["mailboxes", "0644", "root", "root", "postfix.service"],
      ["nftables-admin.nft", "0644", "root", "root", "nftables.service"],
      ["sender-logins", "0644", "root", "root", "postfix.service"],
      ["tls/key.pem", "0600", "root", "root", ""],
      ["users", "0640", "root", "dovecot", "dovecot.service"],
      ["www/.well-known/mta-sts.txt", "0644", "root", "root", ""],
      ["www/autodiscover/autodiscover.xml", "0644", "root", "root", ""],
      ["www/mail/config-v1.1.xml", "0644", "root", "root", ""],
    ]);
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

  test("Postfix maps", () => {
    expect(file(files, "domains").content).toBe("example.com OK\nexample.org OK\n");
    expect(file(files, "mailboxes").content).toBe("alice@example.com OK\nbob@example.com OK\n");
    expect(lines(file(files, "aliases").content)).toEqual([
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

  describe("local-aliases", () => {
    test("root, postmaster, mailer-daemon and abuse reach the postmaster", () => {
      expect(file(files, "local-aliases").content).toBe(
        "root alice@example.com\npostmaster alice@example.com\nmailer-daemon alice@example.com\nabuse alice@example.com\n",
      );
    });

    test("an explicit postmaster is followed", () => {
      const c = parseConfig({ ...fullConfig(), postmaster: "info@example.com" });
      const local = lines(file(runtimeFiles(c, secretsFor(c, () => bcryptLike(4))), "local-aliases").content);
      expect(local).toEqual(["root info@example.com", "postmaster info@example.com", "mailer-daemon info@example.com", "abuse info@example.com"]);
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
  // One alias to everybody: a single line far longer than a part.
  aliases.push({ address: "everyone@example.com", to: mailboxes.map((m) => m.address) });
  return { domain: "example.com", extraDomains: [longDomain], mailboxes, aliases, dkimSelector: "a".repeat(63) };
}

function checkParts(files: RuntimeFile[], layout: ParameterLayout) {
  const { parts, manifest } = parameterValues(files, layout);
  const parsed = JSON.parse(manifest) as Manifest;
  expect(parsed.version).toBe(1);
  expect(parsed.files.map((f) => f.name)).toEqual(files.map((f) => f.name));
  expect(Buffer.byteLength(manifest)).toBeLessThanOrEqual(PART_LIMIT);
  let offset = 0;
  for (const f of files) {
    const count = layout.parts[f.name];
    const own = parts.slice(offset, offset + count);
    offset += count;
    expect(own.map((p) => p.name)).toEqual(Array.from({ length: count }, (_, i) => partName(f.name, i)));
    let joined = "";
    own.forEach((p, i) => {
      expect(Buffer.byteLength(p.value, "utf8")).toBeLessThanOrEqual(PART_LIMIT);
      const header = `# mailstack ${f.name} ${i + 1}/${count}\n`;
      expect(p.value.startsWith(header)).toBe(true);
      joined += p.value.slice(header.length);
    });
    expect(joined).toBe(f.content);
    const entry = parsed.files.find((m) => m.name === f.name)!;
    expect(entry).toEqual({
      name: f.name,
      parts: count,
      sha256: createHash("sha256").update(f.content, "utf8").digest("hex"),
      mode: f.mode,
      owner: f.owner,
      group: f.group,
      reload: f.reload,
    });
    expect(createHash("sha256").update(joined, "utf8").digest("hex")).toBe(entry.sha256);
  }
  expect(offset).toBe(parts.length);
  return parts;
}

describe("parameterLayout and parameterValues", () => {
  test("partName", () => {
    expect(partName("users", 0)).toBe("files/users/0");
    expect(partName("dkim/mail.key", 3)).toBe("files/dkim/mail.key/3");
  });

  test("the worst-case hashes used here are as long as real ones", () => {
    expect(bcryptLike(7)).toHaveLength(hashPassword(PASSWORD, "alice@example.com", "bound").length);
    expect(LONGEST_HASH).toHaveLength(MAX_PASSWORD_HASH_LENGTH);
    expect(checkPasswordHash(LONGEST_HASH)).toBeUndefined();
  });

  test("a small config needs one part per file", () => {
    const config = parseConfig(fullConfig());
    const layout = parameterLayout(config);
    const files = runtimeFiles(config, secretsFor(config, (m) => (m.credential === "password" ? bcryptLike(0) : SAMPLE_HASH)));
    expect(Object.keys(layout.parts).sort()).toEqual(files.map((f) => f.name).sort());
    for (const count of Object.values(layout.parts)) expect(count).toBe(1);
    const parts = checkParts(files, layout);
    expect(parts).toHaveLength(files.length);
    expect(parts.find((p) => p.name === "files/domains/0")!.value).toBe("# mailstack domains 1/1\nexample.com OK\nexample.org OK\n");
  });

  test.each([1, 50, 1000])("%i mailboxes: every part fits, headers are right, parts rebuild each file", (n) => {
    const config = parseConfig(bigConfig(n));
    expect(config.mailboxes).toHaveLength(n);
    const layout = parameterLayout(config);

    const variants: RuntimeSecrets[] = [
      // Worst case: every hash as long as its kind allows, a DKIM key at the bound.
      secretsFor(config, (m) => (m.credential === "password" ? bcryptLike(m.index) : LONGEST_HASH), "K".repeat(3399), "R".repeat(MAX_RESTIC_PASSWORD_LENGTH)),
      // Typical: real-length bcrypt everywhere, a real 2048-bit key.
      secretsFor(config, (m) => (m.credential === "password" ? bcryptLike(m.index) : SAMPLE_HASH)),
      // Tiny secrets: the content shrinks, the layout does not.
      secretsFor(config, () => "{X}x", "K"),
    ];
    for (const secrets of variants) {
      const files = runtimeFiles(config, secrets);
      const parts = checkParts(files, layout);
      expect(parts).toHaveLength(Object.values(layout.parts).reduce((a, b) => a + b, 0));
    }

    const users = runtimeFiles(config, variants[0]).find((f) => f.name === "users")!;
    const usersBytes = Buffer.byteLength(users.content);
    // The layout is tight enough: at most one part more than the worst-case content strictly needs.
    expect(layout.parts.users).toBeGreaterThanOrEqual(Math.ceil(usersBytes / PART_LIMIT));
    expect(layout.parts.users).toBeLessThanOrEqual(Math.ceil(usersBytes / (PART_LIMIT - 64)) + 1);
    if (n === 1000) {
      expect(layout.parts.users).toBeGreaterThan(30);
      expect(layout.parts.aliases).toBeGreaterThan(20);
      expect(layout.parts["sender-logins"]).toBeGreaterThan(20);
    }
  });

  test("part headers are accounted for: worst-case users files just under n × PART_LIMIT still fit", () => {
    // Users files whose worst-case size lands in (n × (PART_LIMIT − header), n × PART_LIMIT] fit in
    // n parts without headers but not with them; the layout must give them n + 1 parts.
    const domain = `${"d".repeat(63)}.example`;
    const build = (m: number, k: number, l: number): MailConfig =>
      parseConfig({
        domain: "example.com",
        extraDomains: [domain],
        mailboxes: [
          ...Array.from({ length: m }, (_, i) => ({ address: `${"f".repeat(k)}${i}@${domain}`, passwordHash: LONGEST_HASH, quota: "1023T" })),
          { address: `${"v".repeat(l)}@${domain}`, passwordHash: LONGEST_HASH, quota: "1023T" },
        ],
      });
    const worst = (config: MailConfig) => runtimeFiles(config, secretsFor(config, () => LONGEST_HASH, "K".repeat(3400)));
    const usersSize = (config: MailConfig) => Buffer.byteLength(file(worst(config), "users").content);
    let tested = 0;
    for (const n of [1, 2, 3]) {
      const header = Buffer.byteLength(`# mailstack users ${n}/${n}\n`);
      const [low, high] = [n * (PART_LIMIT - header) + 1, n * PART_LIMIT];
      search: for (let m = 1; m < 200; m++) {
        if (usersSize(build(m, 1, 1)) > high) break;
        for (let k = 1; k <= 50; k += 7) {
          const base = usersSize(build(m, k, 1));
          if (base > high) break;
          // Each extra character of the last local part adds exactly one byte.
          const l = low - base + 1;
          if (l < 1 || l > 64) continue;
          const config = build(m, k, l);
          expect(usersSize(config)).toBe(low);
          const layout = parameterLayout(config);
          expect(layout.parts.users).toBe(n + 1);
          checkParts(worst(config), layout);
          tested++;
          break search;
        }
      }
    }
    expect(tested).toBe(3);
  });

  test("the layout depends only on the config, not on the secrets", () => {
    const input = bigConfig(50);
    const other: MailConfigInput = {
      ...input,
      mailboxes: input.mailboxes.map((m, i) =>
        m.password !== undefined ? { ...m, password: `another much longer passphrase ${i}` } : { ...m, passwordHash: i % 4 === 1 ? SAMPLE_HASH : LONGEST_HASH },
      ),
    };
    const deferred: MailConfigInput = {
      ...input,
      mailboxes: input.mailboxes.map(({ password, passwordHash, ...m }) => (password !== undefined ? { ...m, password: {} } : { ...m, passwordHash: passwordHash === undefined ? undefined : {} })),
    };
    const layout = parameterLayout(parseConfig(input));
    expect(parameterLayout(parseConfig(other))).toEqual(layout);
    expect(parameterLayout(parseConfig(deferred))).toEqual(layout);
    // Computing it twice gives the same answer.
    expect(parameterLayout(parseConfig(input))).toEqual(layout);
  });

  test("the layout grows with the config", () => {
    const small = parameterLayout(parseConfig(bigConfig(50)));
    const large = parameterLayout(parseConfig(bigConfig(1000)));
    expect(large.parts.users).toBeGreaterThan(small.parts.users);
  });

  test("a file outgrowing its layout throws", () => {
    const small = parseConfig(bigConfig(1));
    const large = parseConfig(bigConfig(200));
    const files = runtimeFiles(large, secretsFor(large, () => SAMPLE_HASH));
    expect(() => parameterValues(files, parameterLayout(small))).toThrow(/outgrew its parameter layout/);
  });

  test("a DKIM key larger than the bound throws", () => {
    const config = parseConfig(minimalConfig());
    const files = runtimeFiles(config, secretsFor(config, () => bcryptLike(0), "K".repeat(PART_LIMIT)));
    expect(() => parameterValues(files, parameterLayout(config))).toThrow("runtime file dkim/mail.key outgrew its parameter layout");
  });

  test("a hash longer than the accepted maximum does not fit a one-part layout", () => {
    const config = parseConfig(minimalConfig());
    const hash = "x".repeat(PART_LIMIT);
    expect(hash.length).toBeGreaterThan(MAX_PASSWORD_HASH_LENGTH);
    const files = runtimeFiles(config, secretsFor(config, () => hash));
    expect(() => parameterValues(files, parameterLayout(config))).toThrow("runtime file users outgrew");
  });

  test("a file missing from the layout throws", () => {
    const config = parseConfig(minimalConfig());
    const files = runtimeFiles(config, secretsFor(config, () => bcryptLike(0)));
    const { users: _users, ...parts } = parameterLayout(config).parts;
    expect(() => parameterValues(files, { parts })).toThrow("runtime file users is missing from the parameter layout");
  });
});
