// The core's side of Amazon SES (sesOutbound, sesInbound): the SMTP password, the key SES
// signs with, the receipt rules, the DNS records and what the host renders differently.
import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import {
  dnsRecords,
  mtaStsPolicy,
  parseConfig,
  placeholderValues,
  postfixMainCf,
  postfixMasterCf,
  rspamdLocalFiles,
  runtimeFiles,
  SES_SMTP_CREDENTIALS_FILE,
  sesDkimPrivateKey,
  sesReceivingRules,
  sesSmtpPassword,
} from "@mailstack/core";
import { fullConfig } from "../support/fixtures";

const SES = { sesOutbound: true, sesInbound: true, sesRegion: "eu-west-1" } as const;
const SECRETS = { passwordHashes: new Map(fullConfig().mailboxes.map((m) => [m.address, "{PLAIN}x"])), dkimPrivateKeyPem: "", tlsPrivateKeyPem: "", resticPassword: "r" };

test("the SMTP password is the one AWS derives: terraform-provider-aws's published vectors", () => {
  // internal/service/iam/access_key_test.go, TestSESSMTPPasswordFromSecretKeySigV4: derived by
  // an implementation known to authenticate against SES, not by this one.
  expect(sesSmtpPassword("some+secret+key", "eu-central-1")).toBe("BMXhUYlu5Z3gSXVQORxlVa7XPaz91aGWdfHxvkOZdWZ2");
  expect(sesSmtpPassword("another+secret+key", "eu-central-1")).toBe("BBbphbrQmrKMx42d1N6+C7VINYEBGI5v9VsZeTxwskfh");
  expect(sesSmtpPassword("some+secret+key", "us-west-1")).toBe("BH+jbMzper5WwlwUar9E1ySBqHa9whi0GPo+sJ0mVYJj");
  expect(sesSmtpPassword("another+secret+key", "us-west-1")).toBe("BKVmjjMDFk/qqw8EROW99bjCS65PF8WKvK5bSr4Y6EqF");
});

test("BYODKIM gets the stack's own key as one base64 line of PKCS#1 DER, the same key", () => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048, privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });
  const given = sesDkimPrivateKey(privateKey);
  expect(given).toMatch(/^[A-Za-z0-9+/]+=*$/);
  const back = createPrivateKey({ key: Buffer.from(given, "base64"), format: "der", type: "pkcs1" });
  expect(createPublicKey(back).export({ type: "spki", format: "pem" })).toBe(publicKey);
});

test("one receipt rule per hosted address that delivers, sorted: no disabled mailbox, no host-name role address", () => {
  const config = parseConfig({
    ...fullConfig(),
    ...SES,
    mailboxes: [...fullConfig().mailboxes, { address: "carol@example.com", password: "correct horse battery staple", enabled: false }],
  });
  expect(sesReceivingRules(config)).toEqual(
    ["abuse@example.com", "abuse@example.org", "alice@example.com", "alice@example.org", "bob@example.com", "dmarc@example.com", "info@example.com", "postmaster@example.com", "postmaster@example.org"].map(
      (address) => ({ address, prefix: `inbound/${address}/` }),
    ),
  );
});

test("DNS: each domain's MAIL FROM domain names SES, and SES's MX comes last, in the MTA-STS policy too", () => {
  const config = parseConfig({ ...fullConfig(), ...SES, secondaryMx: [{ host: "mx2.example.net" }] });
  const records = dnsRecords(config, placeholderValues(config));
  const ses = records.filter((r) => r.key.startsWith("ses-") || r.content.includes("amazon"));
  expect(ses.map((r) => [r.name, r.type, r.priority, r.content])).toEqual(
    ["example.com", "example.org"].flatMap((d) => [
      [d, "MX", 30, "inbound-smtp.eu-west-1.amazonaws.com"],
      [`bounce.${d}`, "MX", 10, "feedback-smtp.eu-west-1.amazonses.com"],
      [`bounce.${d}`, "TXT", undefined, '"v=spf1 include:amazonses.com -all"'],
    ]),
  );
  expect(mtaStsPolicy(config)).toContain("mx: mail.example.com\nmx: mx2.example.net\nmx: inbound-smtp.eu-west-1.amazonaws.com\n");
  // Without SES, none of it.
  const plain = parseConfig(fullConfig());
  expect(dnsRecords(plain, placeholderValues(plain)).filter((r) => r.content.includes("amazon"))).toEqual([]);
});

test("the host: SES's transport and credentials and no DKIM signing with sesOutbound; the importer's smtpd with sesInbound", () => {
  const both = parseConfig({ ...fullConfig(), ...SES });
  const outbound = parseConfig({ ...fullConfig(), ...SES, sesInbound: false });
  const plain = parseConfig(fullConfig());
  const credentials = { username: "AKIAIOSFODNN7EXAMPLE", password: sesSmtpPassword("secret", "eu-west-1") };

  expect(postfixMainCf(both)).toContain("\ndefault_transport = ses:[email-smtp.eu-west-1.amazonaws.com]:587\n");
  expect(postfixMainCf(plain)).not.toContain("default_transport");
  expect(postfixMasterCf(both)).toMatch(/\nses +unix .* smtp\n {2}-o syslog_name=postfix\/ses\n/);
  expect(postfixMasterCf(both)).toMatch(/\n127\.0\.0\.1:10026 +inet .* smtpd\n {2}-o syslog_name=postfix\/ses-import\n/);
  expect(postfixMasterCf(outbound)).not.toContain("ses-import");
  expect(postfixMasterCf(plain)).not.toMatch(/^ses /m);

  // SES's limits: 50 recipients a message, 40 MB; the submission ports refuse larger mail at once.
  expect(postfixMainCf(both)).toContain("\nses_destination_recipient_limit = 50\n");
  expect(postfixMasterCf(both)).toMatch(/\n587 +inet [^\n]*\n(?: {2}-o [^\n]*\n)* {2}-o message_size_limit=40000000\n/);
  expect(postfixMasterCf(parseConfig({ ...fullConfig(), ...SES, messageSizeLimitMiB: 30 }))).not.toContain("message_size_limit");
  expect(postfixMasterCf(plain)).not.toContain("message_size_limit");

  expect(rspamdLocalFiles(both)["dkim_signing.conf"]).toMatch(/enabled = false;/);
  expect(rspamdLocalFiles(plain)["dkim_signing.conf"]).toMatch(/enabled = true;/);

  const file = runtimeFiles(both, { ...SECRETS, sesSmtpCredentials: credentials }).find((f) => f.name === SES_SMTP_CREDENTIALS_FILE);
  expect(file).toMatchObject({ content: `[email-smtp.eu-west-1.amazonaws.com]:587 AKIAIOSFODNN7EXAMPLE:${credentials.password}\n`, mode: "0600", owner: "root", key: true });
  expect(runtimeFiles(plain, SECRETS).map((f) => f.name)).not.toContain(SES_SMTP_CREDENTIALS_FILE);
  expect(() => runtimeFiles(both, SECRETS)).toThrow("sesOutbound is on but the SES SMTP credentials are missing");
});
