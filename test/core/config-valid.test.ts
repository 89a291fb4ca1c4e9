import {
  checkAddress,
  checkDomain,
  checkPassword,
  checkPasswordHash,
  CONFIG_FIELDS,
  DEFAULTS,
  FIELD_KINDS,
  formatPath,
  hashPassword,
  instanceArchitecture,
  isWithin,
  type MailConfig,
  type MailConfigInput,
  MAX_PASSWORD_HASH_LENGTH,
  MIN_PASSWORD_LENGTH,
  parseConfig,
} from "@mailstack/core";
import { fullConfig, minimalConfig, SAMPLE_HASH } from "../support/fixtures";

const PASSWORD = "correct horse battery staple";
const parse = (extra: Partial<MailConfigInput> = {}): MailConfig => parseConfig({ ...minimalConfig(), ...extra });
const aliasMap = (config: MailConfig) => Object.fromEntries(config.aliases.map((a) => [a.address, a]));

describe("names are normalised", () => {
  test("an IDN domain and its addresses become xn-- names", () => {
    const config = parseConfig({
      domain: "Bücher.example",
      extraDomains: ["münchen.example"],
      mailboxes: [
        { address: "anna@bücher.example", password: PASSWORD, aliases: ["anna@MÜNCHEN.example"] },
        { address: "ben@xn--bcher-kva.example", password: PASSWORD },
      ],
      aliases: [{ address: "info@bücher.example", to: ["anna@bücher.example", "BEN@Bücher.Example"] }],
      cloudflareZoneIds: { "münchen.example": "0123456789abcdef0123456789abcdef" },
    });
    expect(config.domain).toBe("xn--bcher-kva.example");
    expect(config.domains).toEqual(["xn--bcher-kva.example", "xn--mnchen-3ya.example"]);
    expect(config.hostname).toBe("mail.xn--bcher-kva.example");
    expect(config.mailboxes.map((m) => m.address)).toEqual(["anna@xn--bcher-kva.example", "ben@xn--bcher-kva.example"]);
    const aliases = aliasMap(config);
    expect(aliases["anna@xn--mnchen-3ya.example"]).toEqual({ address: "anna@xn--mnchen-3ya.example", to: ["anna@xn--bcher-kva.example"], origin: "mailbox" });
    expect(aliases["info@xn--bcher-kva.example"].to).toEqual(["anna@xn--bcher-kva.example", "ben@xn--bcher-kva.example"]);
    expect(config.postmaster).toBe("anna@xn--bcher-kva.example");
    // Nothing non-ASCII survives anywhere in the normalised config.
    expect(JSON.stringify(config)).toMatch(/^[\x20-\x7e]*$/);
  });

  test("upper-case addresses and domains are lower-cased", () => {
    const config = parseConfig({
      domain: "EXAMPLE.com",
      hostname: "MAIL.Example.COM",
      mailboxes: [{ address: "Alice.Smith@Example.COM", password: PASSWORD, aliases: ["ALICE@example.com"] }],
      aliases: [{ address: "Info@EXAMPLE.com", to: ["ALICE.SMITH@example.com"] }],
      postmaster: "ALICE.smith@example.com",
      dmarcReports: "INFO@example.com",
      alertEmail: "Ops@Example.NET",
    });
    expect(config.domain).toBe("example.com");
    expect(config.hostname).toBe("mail.example.com");
    expect(config.mailboxes[0].address).toBe("alice.smith@example.com");
    expect(aliasMap(config)["info@example.com"].to).toEqual(["alice.smith@example.com"]);
    expect(aliasMap(config)["alice@example.com"].to).toEqual(["alice.smith@example.com"]);
    expect(config.postmaster).toBe("alice.smith@example.com");
    expect(config.dmarc.reports).toBe("info@example.com");
    expect(config.alertEmail).toBe("ops@example.net");
  });

  test("a trailing dot and surrounding blanks are removed", () => {
    const config = parseConfig({
      domain: " example.com. ",
      extraDomains: ["example.org."],
      hostname: "smtp.example.org.",
      mailboxes: [{ address: " alice@example.com. ", password: PASSWORD }],
    });
    expect(config.domains).toEqual(["example.com", "example.org"]);
    expect(config.hostname).toBe("smtp.example.org");
    expect(config.mailboxes[0].address).toBe("alice@example.com");
  });

  test("checkDomain and checkAddress directly", () => {
    expect(checkDomain("Sub.Example.CO.uk.")).toEqual({ ok: true, value: "sub.example.co.uk" });
    expect(checkDomain("bücher.example")).toEqual({ ok: true, value: "xn--bcher-kva.example" });
    expect(checkDomain("xn--bcher-kva.example")).toEqual({ ok: true, value: "xn--bcher-kva.example" });
    expect(checkDomain(`${"a".repeat(63)}.com`).ok).toBe(true);
    expect(checkDomain("1password.com").ok).toBe(true);
    expect(checkDomain("example.123").ok).toBe(false);
    // Underscore labels only where asked for (SPF includes such as Google's), never the top label.
    expect(checkDomain("_spf.google.com").ok).toBe(false);
    expect(checkDomain("_spf.google.com", { serviceLabels: true })).toEqual({ ok: true, value: "_spf.google.com" });
    expect(checkDomain("spf.google._com", { serviceLabels: true }).ok).toBe(false);
    expect(checkAddress("OBrien.Team-1_x@Example.com")).toEqual({ ok: true, value: "obrien.team-1_x@example.com" });
    expect(checkAddress("1-_x.y-@example.com")).toEqual({ ok: true, value: "1-_x.y-@example.com" });
    // Every other dot-atom character means something in a map, the users file, a path or a shell.
    for (const c of "!#$%&'*/=?^`{|}~") expect(checkAddress(`a${c}b@example.com`).ok).toBe(false);
    expect(checkAddress("-bob@example.com").ok).toBe(false);
    expect(checkAddress(`${"a".repeat(64)}@example.com`).ok).toBe(true);
    expect(checkAddress(`${"a".repeat(65)}@example.com`).ok).toBe(false);
    expect(checkAddress("a@b@example.com").ok).toBe(false);
  });

  test("isWithin and formatPath", () => {
    expect(isWithin("mail.example.com", "example.com")).toBe(true);
    expect(isWithin("example.com", "example.com")).toBe(true);
    expect(isWithin("badexample.com", "example.com")).toBe(false);
    expect(formatPath(["mailboxes", 2, "address"])).toBe("mailboxes[2].address");
    expect(formatPath(["aliases", 0, "to", 1])).toBe("aliases[0].to[1]");
    expect(formatPath([])).toBe("");
  });
});

describe("defaults", () => {
  test("the minimal config gets every default", () => {
    const config = parse();
    expect(config).toEqual({
      domain: "example.com",
      domains: ["example.com"],
      hostname: "mail.example.com",
      mailboxes: [
        {
          address: "alice@example.com",
          credential: "password",
          quotaMiB: 5 * 1024,
          enabled: true,
          disabledReply: "Mailbox disabled, not accepting messages",
          sendingLimits: { messagesPerHour: 100, recipientsPerHour: 300 },
          appPasswords: [],
          requireAppPasswords: false,
          index: 0,
        },
      ],
      aliases: [
        { address: "abuse@example.com", to: ["alice@example.com"], origin: "generated" },
        { address: "postmaster@example.com", to: ["alice@example.com"], origin: "generated" },
      ],
      catchAll: [],
      allowExternalForwarding: false,
      postmaster: "alice@example.com",
      abuse: "alice@example.com",
      dmarc: { policy: "quarantine", reports: "alice@example.com", strictAlignment: false },
      tls: { inbound: "opportunistic", outbound: "dane", inboundMinVersion: "TLSv1.2" },
      adminCidrs: [],
      instanceType: "t4g.small",
      architecture: "arm64",
      rootVolumeGiB: 16,
      dataVolumeGiB: 20,
      pop3: false,
      messageSizeLimitMiB: 50,
      dkimSelector: "mail",
      dkimSelectors: ["mail"],
      dkimNextSelector: undefined,
      dkimPreviousSelector: undefined,
      mx: [{ host: "mail.example.com", priority: 10 }],
      spfIncludes: [],
      mtaSts: "enforce",
      caaIssuers: ["letsencrypt.org"],
      nonMailDomains: [],
      dnssec: false,
      verificationRecords: [],
      dnsProvider: "cloudflare",
      backupRetentionDays: 90,
      backupObjectLock: undefined,
      backupReplicaRegion: undefined,
      snapshotRetentionDays: 7,
      backupSchedule: "*-*-* 02:00:00",
      backupKeep: { daily: 7, weekly: 4, monthly: 12 },
      sendingLimits: { messagesPerHour: 100, recipientsPerHour: 300, recipientsPerMessage: 100 },
      alertEmail: undefined,
      logRetentionDays: 30,
      waitUntilHealthyMinutes: 0,
      healthCheckSkip: [],
      alarms: {},
      availabilityZone: undefined,
    });
    expect(DEFAULTS.snapshotRetentionDays).toBe(config.snapshotRetentionDays);
    expect(DEFAULTS.instanceType).toBe(config.instanceType);
  });

  test("DNS settings are normalised", () => {
    const config = parse({
      dkimSelector: "b",
      dkimNextSelector: "c",
      dkimPreviousSelector: "a",
      secondaryMx: [{ host: "MX2.Example.NET." }, { host: "mx3.example.net", priority: 40 }, { host: "mx4.example.net" }],
      spfInclude: ["include:AmazonSES.com", "_spf.google.com", "amazonses.com"],
      mtaSts: "testing",
      caaIssuers: ["letsencrypt.org", "Sectigo.com", "letsencrypt.org"],
      nonMailDomains: ["Example.net", "www.example.com"],
      dnssec: true,
      verificationRecords: { "Example.com": ["google-site-verification=x1"], "example.net": ["MS=ms42"] },
      dnsProvider: "cloudflare",
    });
    expect(config).toMatchObject({
      dkimSelector: "b",
      dkimSelectors: ["b", "c", "a"],
      mx: [
        { host: "mail.example.com", priority: 10 },
        { host: "mx2.example.net", priority: 20 },
        { host: "mx3.example.net", priority: 40 },
        { host: "mx4.example.net", priority: 40 },
      ],
      spfIncludes: ["amazonses.com", "_spf.google.com"],
      mtaSts: "testing",
      caaIssuers: ["letsencrypt.org", "sectigo.com"],
      nonMailDomains: ["example.net", "www.example.com"],
      dnssec: true,
      verificationRecords: [
        { domain: "example.com", value: "google-site-verification=x1" },
        { domain: "example.net", value: "MS=ms42" },
      ],
    });
    expect(parse({ dnsProvider: "route53", route53ZoneIds: { "example.com": "Z0123456789ABCDEFGHIJ" } }).dnsProvider).toBe("route53");
    expect(parse({ caaIssuers: [] }).caaIssuers).toEqual([]);
  });

  test("default hostname is mail.<primary domain>, also with extra domains", () => {
    expect(parse({ extraDomains: ["example.org"] }).hostname).toBe("mail.example.com");
  });

  test("a hostname within an extra domain, or deeper below, is accepted", () => {
    expect(parse({ extraDomains: ["example.org"], hostname: "mx.example.org" }).hostname).toBe("mx.example.org");
    expect(parse({ hostname: "a.b.example.com" }).hostname).toBe("a.b.example.com");
  });

  test("explicit settings override the defaults", () => {
    // Settings the normalised config keeps under the same name and value.
    const kept = {
      rootVolumeGiB: 8,
      dataVolumeGiB: 16384,
      pop3: true,
      messageSizeLimitMiB: 1024,
      dkimSelector: "s2024",
      backupRetentionDays: 30,
      backupObjectLock: { mode: "COMPLIANCE" as const, days: 30 },
      backupReplicaRegion: "us-gov-west-1",
      snapshotRetentionDays: 365,
      backupSchedule: "Mon..Fri *-*-* 01,13:30",
      availabilityZone: "eu-central-1b",
      allowExternalForwarding: true,
    };
    const config = parse({
      ...kept,
      dmarcPolicy: "reject",
      dmarcStrictAlignment: true,
      inboundTls: "required",
      outboundTls: "opportunistic",
      inboundTlsMinVersion: "TLSv1.3",
    });
    expect(config.dmarc).toEqual({ policy: "reject", reports: "alice@example.com", strictAlignment: true });
    expect(config.tls).toEqual({ inbound: "required", outbound: "opportunistic", inboundMinVersion: "TLSv1.3" });
    expect(config).toMatchObject(kept);
  });

  test("sendingLimits fills the limits it does not name", () => {
    expect(parse({ sendingLimits: { messagesPerHour: 20 } }).sendingLimits).toEqual({ messagesPerHour: 20, recipientsPerHour: 300, recipientsPerMessage: 100 });
  });

  test("a mailbox's own sendingLimits replace the stack's hourly limits for it alone; what it leaves out is the stack's", () => {
    const config = parse({
      sendingLimits: { messagesPerHour: 20, recipientsPerHour: 60 },
      mailboxes: [
        { address: "alice@example.com", password: "correct horse battery staple" },
        { address: "news@example.com", password: "correct horse battery staple", sendingLimits: { messagesPerHour: 1000, recipientsPerHour: 100000 } },
        { address: "kiosk@example.com", password: "correct horse battery staple", sendingLimits: { messagesPerHour: 1 } },
        { address: "shared@example.com", password: "correct horse battery staple", sendingLimits: {} },
      ],
    });
    expect(config.mailboxes.map((m) => [m.address, m.sendingLimits])).toEqual([
      ["alice@example.com", { messagesPerHour: 20, recipientsPerHour: 60 }],
      ["news@example.com", { messagesPerHour: 1000, recipientsPerHour: 100000 }],
      ["kiosk@example.com", { messagesPerHour: 1, recipientsPerHour: 60 }],
      ["shared@example.com", { messagesPerHour: 20, recipientsPerHour: 60 }],
    ]);
    // The stack's limits stay as written, and so does the one per message.
    expect(config.sendingLimits).toEqual({ messagesPerHour: 20, recipientsPerHour: 60, recipientsPerMessage: 100 });
  });

  test("backupKeep fills the periods it does not name, and 0 turns one off", () => {
    expect(parse({ backupKeep: { daily: 30 } }).backupKeep).toEqual({ daily: 30, weekly: 4, monthly: 12 });
    expect(parse({ backupKeep: { weekly: 0, monthly: 0 } }).backupKeep).toEqual({ daily: 7, weekly: 0, monthly: 0 });
  });

  test.each([
    ["500M", 500],
    ["500MiB", 500],
    ["500 MB", 500],
    ["5G", 5120],
    ["5g", 5120],
    ["1.5G", 1536],
    ["1T", 1024 * 1024],
    ["unlimited", undefined],
    ["Unlimited", undefined],
  ])("quota %s is %p MiB", (quota, mib) => {
    const config = parse({ mailboxes: [{ address: "alice@example.com", password: PASSWORD, quota }] });
    expect(config.mailboxes[0].quotaMiB).toBe(mib);
  });

  test("backup settings: a lock as long as the retention, and a KMS key that is not known yet", () => {
    // A lock equal to the retention never holds back the lifecycle's expiry.
    expect(parse({ backupRetentionDays: 7, backupObjectLock: { mode: "GOVERNANCE", days: 7 } }).backupObjectLock).toEqual({ mode: "GOVERNANCE", days: 7 });
    expect(parse({ backupObjectLock: { mode: "GOVERNANCE", days: 1 }, snapshotRetentionDays: 1 }).snapshotRetentionDays).toBe(1);
    // A key ARN, a multi-region key, and a Pulumi output (an object) standing for one.
    for (const backupKmsKeyArn of [
      "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
      "arn:aws:kms:us-east-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab",
      "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
      { output: true },
    ]) {
      expect(() => parse({ backupKmsKeyArn } as never)).not.toThrow();
    }
  });

  test("with the stack's region: its zones, a replica elsewhere and a key of it; a region newer than mailstack's list", () => {
    const key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const settings = { availabilityZone: "eu-west-1c", backupReplicaRegion: "eu-central-1", backupKmsKeyArn: key };
    expect(parseConfig({ ...minimalConfig(), ...settings }, { region: "eu-west-1" })).toMatchObject({ availabilityZone: "eu-west-1c", backupReplicaRegion: "eu-central-1" });
    expect(parseConfig({ ...minimalConfig(), availabilityZone: "ap-southeast-9a", backupReplicaRegion: "ap-southeast-8" }, { region: "ap-southeast-9" }).availabilityZone).toBe("ap-southeast-9a");
    // Without it, zone, replica and key are checked on their own only.
    expect(parse({ ...settings, backupReplicaRegion: "us-east-1" }).backupReplicaRegion).toBe("us-east-1");
  });

  test("backupSchedule in the forms systemd reads", () => {
    for (const backupSchedule of ["daily", "weekly UTC", "Sat,Sun 03:30", "*-*-* 00/6:00:00", "*-*~01 04:00", "Mon..Fri *-*-* 01,13:30"]) {
      expect(parse({ backupSchedule }).backupSchedule).toBe(backupSchedule);
    }
  });

  test("admin CIDRs are normalised and de-duplicated", () => {
    const config = parse({ adminCidrs: ["203.0.113.7/32", " 2001:DB8:0::/48", "203.0.113.7/32", "198.51.100.0/24"] });
    expect(config.adminCidrs).toEqual(["203.0.113.7/32", "2001:db8::/48", "198.51.100.0/24"]);
  });
});

describe("instance type and architecture", () => {
  test.each([
    ["t4g.small", "arm64"],
    ["t4g.medium", "arm64"],
    ["m7g.large", "arm64"],
    ["t3.small", "x86_64"],
    ["t3a.medium", "x86_64"],
    ["c7i-flex.large", "x86_64"],
    ["m6i.xlarge", "x86_64"],
  ] as const)("%s runs %s", (instanceType, architecture) => {
    expect(parse({ instanceType }).architecture).toBe(architecture);
    // Agreeing explicit architecture is fine too.
    expect(parse({ instanceType, architecture }).architecture).toBe(architecture);
  });

  test("default instance t4g.small is arm64", () => {
    const config = parse();
    expect(config.instanceType).toBe("t4g.small");
    expect(config.architecture).toBe("arm64");
  });

  test.each(["t4g.2xlarge", "m7g.16xlarge", "m7g.metal", "c7i.metal-24xl", "r7iz.metal-16xl", "x2iedn.32xlarge"])("size %s is one EC2 has", (instanceType) => {
    expect(parse({ instanceType }).instanceType).toBe(instanceType);
  });

  test("an unknown family is accepted with an explicit architecture", () => {
    expect(parse({ instanceType: "zz9.large", architecture: "x86_64" })).toMatchObject({ instanceType: "zz9.large", architecture: "x86_64" });
    expect(parse({ instanceType: "zz9g.large", architecture: "arm64" }).architecture).toBe("arm64");
  });

  test("instanceArchitecture directly", () => {
    expect(instanceArchitecture("t4g.small")).toEqual({ ok: true, architecture: "arm64" });
    expect(instanceArchitecture("t3.small", "x86_64")).toEqual({ ok: true, architecture: "x86_64" });
    expect(instanceArchitecture("t3.micro").ok).toBe(false);
    expect(instanceArchitecture("T4G.small").ok).toBe(false);
    expect(instanceArchitecture("zz9.large").ok).toBe(false);
  });
});

describe("generated postmaster@ and abuse@", () => {
  test("every domain gets both, pointing to the first mailbox by default", () => {
    const config = parseConfig(fullConfig());
    const aliases = aliasMap(config);
    for (const domain of ["example.com", "example.org"]) {
      expect(aliases[`postmaster@${domain}`]).toEqual({ address: `postmaster@${domain}`, to: ["alice@example.com"], origin: "generated" });
      expect(aliases[`abuse@${domain}`]).toEqual({ address: `abuse@${domain}`, to: ["alice@example.com"], origin: "generated" });
    }
    expect(config.postmaster).toBe("alice@example.com");
    expect(config.abuse).toBe("alice@example.com");
  });

  test("postmaster and abuse settings are followed", () => {
    const config = parseConfig({
      ...fullConfig(),
      postmaster: "bob@example.com",
      abuse: "info@example.com",
    });
    const aliases = aliasMap(config);
    expect(aliases["postmaster@example.com"].to).toEqual(["bob@example.com"]);
    expect(aliases["postmaster@example.org"].to).toEqual(["bob@example.com"]);
    expect(aliases["abuse@example.com"].to).toEqual(["info@example.com"]);
    expect(aliases["abuse@example.org"].to).toEqual(["info@example.com"]);
    // DMARC reports default to the postmaster, unless set (fullConfig sets dmarc@).
    expect(config.dmarc.reports).toBe("dmarc@example.com");
    expect(parse({ postmaster: "alice@example.com" }).dmarc.reports).toBe("alice@example.com");
  });

  test("abuse defaults to the postmaster", () => {
    const config = parseConfig({ ...fullConfig(), postmaster: "bob@example.com" });
    expect(config.abuse).toBe("bob@example.com");
    expect(aliasMap(config)["abuse@example.org"].to).toEqual(["bob@example.com"]);
  });

  test("user-defined postmaster@ and abuse@ are kept and not generated", () => {
    const config = parseConfig({
      ...fullConfig(),
      aliases: [
        ...fullConfig().aliases!,
        { address: "postmaster@example.org", to: ["bob@example.com"] },
      ],
      mailboxes: [
        ...fullConfig().mailboxes,
        { address: "abuse@example.com", password: PASSWORD },
      ],
    });
    const aliases = aliasMap(config);
    expect(aliases["postmaster@example.org"]).toEqual({ address: "postmaster@example.org", to: ["bob@example.com"], origin: "alias" });
    expect(aliases["abuse@example.com"]).toBeUndefined();
    expect(config.mailboxes.map((m) => m.address)).toContain("abuse@example.com");
    expect(aliases["postmaster@example.com"].origin).toBe("generated");
    expect(aliases["abuse@example.org"].origin).toBe("generated");
    // Each address appears once.
    const addresses = config.aliases.map((a) => a.address);
    expect(new Set(addresses).size).toBe(addresses.length);
  });

  test("a postmaster mailbox named postmaster@ gets no alias to itself", () => {
    const config = parseConfig({
      domain: "example.com",
      mailboxes: [{ address: "postmaster@example.com", password: PASSWORD }],
    });
    expect(aliasMap(config)["postmaster@example.com"]).toBeUndefined();
    expect(aliasMap(config)["abuse@example.com"].to).toEqual(["postmaster@example.com"]);
  });

  test("aliases may forward to generated postmaster@ and abuse@", () => {
    const config = parse({ aliases: [{ address: "security@example.com", to: ["abuse@example.com", "postmaster@example.com"] }] });
    expect(aliasMap(config)["security@example.com"].to).toEqual(["abuse@example.com", "postmaster@example.com"]);
  });

  test("abuse and dmarcReports may name a generated postmaster@ or abuse@", () => {
    const config = parse({ extraDomains: ["example.org"], abuse: "postmaster@example.org", dmarcReports: "abuse@example.com" });
    expect(config.abuse).toBe("postmaster@example.org");
    expect(config.dmarc.reports).toBe("abuse@example.com");
    expect(aliasMap(config)["abuse@example.com"].to).toEqual(["postmaster@example.org"]);
    expect(aliasMap(config)["postmaster@example.org"].to).toEqual(["alice@example.com"]);
  });

  test("aliases are sorted by address", () => {
    const addresses = parseConfig(fullConfig()).aliases.map((a) => a.address);
    expect(addresses).toEqual([...addresses].sort());
  });
});

describe("mailboxes and aliases", () => {
  test("credential kind and index come from the input", () => {
    const config = parseConfig(fullConfig());
    expect(config.mailboxes).toEqual([
      { address: "alice@example.com", credential: "password", quotaMiB: 10240, enabled: true, disabledReply: "Mailbox disabled, not accepting messages", sendingLimits: { messagesPerHour: 100, recipientsPerHour: 300 }, appPasswords: [], requireAppPasswords: false, index: 0 },
      { address: "bob@example.com", credential: "passwordHash", quotaMiB: undefined, enabled: true, disabledReply: "Mailbox disabled, not accepting messages", sendingLimits: { messagesPerHour: 100, recipientsPerHour: 300 }, appPasswords: [], requireAppPasswords: false, index: 1 },
    ]);
  });

  test("external forwarding is allowed when enabled", () => {
    const config = parse({ allowExternalForwarding: true, aliases: [{ address: "fwd@example.com", to: ["someone@gmail.com", "alice@example.com"] }] });
    expect(aliasMap(config)["fwd@example.com"]).toEqual({ address: "fwd@example.com", to: ["someone@gmail.com", "alice@example.com"], origin: "alias" });
  });

  test("aliases may chain through other aliases, in any order", () => {
    const config = parse({
      aliases: [
        { address: "all@example.com", to: ["team@example.com"] },
        { address: "team@example.com", to: ["alice@example.com"] },
      ],
    });
    expect(aliasMap(config)["all@example.com"].to).toEqual(["team@example.com"]);
  });

  test("a diamond of aliases is not a loop", () => {
    expect(() =>
      parse({
        aliases: [
          { address: "a@example.com", to: ["b@example.com", "c@example.com"] },
          { address: "b@example.com", to: ["d@example.com"] },
          { address: "c@example.com", to: ["d@example.com"] },
          { address: "d@example.com", to: ["alice@example.com"] },
        ],
      }),
    ).not.toThrow();
  });

  test("a pre-hashed password is accepted", () => {
    expect(parse({ mailboxes: [{ address: "alice@example.com", passwordHash: SAMPLE_HASH }] }).mailboxes[0].credential).toBe("passwordHash");
  });
});

describe("deferred values (Pulumi outputs) are accepted", () => {
  // An object stands for a pulumi.Output: its value is unknown until deployment.
  const deferred = () => ({ __pulumiOutput: true });

  test("vpcId and subnetId", () => {
    expect(() => parse({ vpcId: deferred() as never, subnetId: deferred() as never })).not.toThrow();
    expect(() => parse({ vpcId: "vpc-0123456789abcdef0", subnetId: deferred() as never })).not.toThrow();
    expect(() => parse({ vpcId: deferred() as never, subnetId: "subnet-0123456789abcdef0" })).not.toThrow();
  });

  test("a deferred vpcId still needs a subnetId", () => {
    expect(() => parse({ vpcId: deferred() as never })).toThrow(/subnetId: is required when vpcId is set/);
  });

  test("password and passwordHash", () => {
    const config = parseConfig({
      domain: "example.com",
      mailboxes: [
        { address: "alice@example.com", password: deferred() },
        { address: "bob@example.com", passwordHash: deferred() },
      ],
    });
    expect(config.mailboxes.map((m) => m.credential)).toEqual(["password", "passwordHash"]);
    // The secret never enters the parsed config.
    expect(JSON.stringify(config)).not.toContain("__pulumiOutput");
  });

  test("a deferred Cloudflare zone id", () => {
    expect(() => parse({ cloudflareZoneIds: { "example.com": deferred() as never } })).not.toThrow();
  });

  test("plain secret values never enter the parsed config", () => {
    const config = parseConfig(fullConfig());
    expect(JSON.stringify(config)).not.toContain("correct horse");
    expect(JSON.stringify(config)).not.toContain(SAMPLE_HASH.slice(20));
  });
});

describe("field tables", () => {
  test("FIELD_KINDS covers exactly the config fields", () => {
    expect(Object.keys(FIELD_KINDS).sort()).toEqual([...CONFIG_FIELDS].sort());
  });

  test("list, number, boolean and object fields are JSON; names are strings", () => {
    for (const field of ["mailboxes", "aliases", "extraDomains", "adminCidrs", "pop3", "rootVolumeGiB", "cloudflareZoneIds"] as const) {
      expect(FIELD_KINDS[field]).toBe("json");
    }
    for (const field of ["domain", "hostname", "postmaster", "instanceType", "vpcId", "dkimSelector"] as const) {
      expect(FIELD_KINDS[field]).toBe("string");
    }
  });
});

describe("checkPassword", () => {
  test.each([
    ["correct horse battery staple", undefined],
    ["x".repeat(MIN_PASSWORD_LENGTH), undefined],
    ["x".repeat(72), undefined],
    ["ü".repeat(36), undefined], // exactly 72 bytes
    ["€".repeat(24), undefined], // exactly 72 bytes
    ["ali-is-not-alice", "contains the mailbox name"],
    ["ALICE in wonderland", "contains the mailbox name"],
    ["x".repeat(MIN_PASSWORD_LENGTH - 1), "shorter than 12 characters"],
    ["🙂".repeat(11), "shorter than 12 characters"], // 11 characters, 44 bytes
    ["x".repeat(73), "longer than 72 bytes"],
    ["ü".repeat(36) + "x", "longer than 72 bytes"],
    ["€".repeat(25), "longer than 72 bytes"],
  ])("%j", (password, problem) => {
    const result = checkPassword(password, "alice@example.com");
    if (problem === undefined) expect(result).toBeUndefined();
    else expect(result).toContain(problem);
  });

  test("short mailbox names are not searched for", () => {
    expect(checkPassword("bobcat-stairs-lamp", "bo@example.com")).toBeUndefined();
    expect(checkPassword("bobcat-stairs-lamp", "bob@example.com")).toContain("mailbox name");
  });

  test("non-strings are refused", () => {
    expect(checkPassword(undefined, "alice@example.com")).toBe("must be a string");
    expect(checkPassword(123456789012345, "alice@example.com")).toBe("must be a string");
  });
});

describe("checkPasswordHash", () => {
  const valid = [
    SAMPLE_HASH,
    SAMPLE_HASH.replace("$2b$", "$2y$"),
    SAMPLE_HASH.replace("$10$", "$04$"),
    SAMPLE_HASH.replace("$10$", "$31$"),
    `  ${SAMPLE_HASH}\n`,
    hashPassword(PASSWORD, "alice@example.com", "test"),
    "{SHA512-CRYPT}$6$saltsalt$" + "a".repeat(86),
    "{SHA512-CRYPT}$6$rounds=656000$saltsaltsaltsalt$" + "b".repeat(86),
    "{SHA256-CRYPT}$5$saltsalt$" + "c".repeat(43),
    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
    "{ARGON2I}$argon2i$v=19$m=65536,t=3,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
    // The longest accepted hash.
    "{SHA512-CRYPT}$6$rounds=" + "5".repeat(32) + "$" + "s".repeat(16) + "$" + "h".repeat(86),
  ];
  test.each(valid)("accepts %s", (hash) => {
    expect(checkPasswordHash(hash)).toBeUndefined();
  });

  test("the longest accepted hash is MAX_PASSWORD_HASH_LENGTH long", () => {
    expect(valid[valid.length - 1]).toHaveLength(MAX_PASSWORD_HASH_LENGTH);
  });

  test.each([
    [42, "must be a string"],
    ["$2b$10$ZUDnZFLyWULpJV/qWU2rc.XEThdZxhIbbWJepiA4ZKNDAB1Lb56sW", "must start with its scheme"],
    ["{blf-crypt}$2b$10$ZUDnZFLyWULpJV/qWU2rc.XEThdZxhIbbWJepiA4ZKNDAB1Lb56sW", "must start with its scheme"],
    ["{PLAIN}secret", "weak or unsupported"],
    ["{CRYPT}abJnggxhB/yWI", "weak or unsupported"],
    ["{MD5-CRYPT}$1$saltsalt$abcdefghijklmnopqrstuv", "weak or unsupported"],
    ["{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "weak or unsupported"],
    ["{SSHA512}abc", "weak or unsupported"],
    ["{BLF-CRYPT}$2b$10$short", "not a well-formed {BLF-CRYPT} hash"],
    ["{BLF-CRYPT}$2x$10$ZUDnZFLyWULpJV/qWU2rc.XEThdZxhIbbWJepiA4ZKNDAB1Lb56sW", "not a well-formed"],
    ["{BLF-CRYPT}$2b$10$ZUDnZFLyWULpJV/qWU2rc.XEThdZxhIbbWJepiA4ZKNDAB1Lb56s:", "not a well-formed"],
    ["{SHA256-CRYPT}$6$saltsalt$" + "c".repeat(43), "not a well-formed {SHA256-CRYPT}"],
    ["{ARGON2ID}$argon2i$v=19$m=65536,t=3,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub", "not a well-formed {ARGON2ID}"],
    ["{SHA512-CRYPT}$6$rounds=" + "5".repeat(33) + "$" + "s".repeat(16) + "$" + "h".repeat(86), "longer than 160 characters"],
  ])("refuses %j", (hash, problem) => {
    expect(checkPasswordHash(hash)).toContain(problem);
  });
});
