// Where secrets go: SSM SecureString parameters and the KMS-encrypted runtime object (as Pulumi
// secrets), never user data or any other plain input; and which changes leave the user data
// (hence the instance) alone.
import { createHash } from "node:crypto";
import { hashPassword, type MailConfigInput, type Manifest, PARAMETER_LIMIT } from "@mailstack/core";
import { MailStack, type MailStackArgs, readStackConfig } from "@mailstack/pulumi";
import * as pulumi from "@pulumi/pulumi";
import { fullConfig, SAMPLE_HASH } from "../support/fixtures";
import { type RecordedResource, type Run, runProgram } from "../support/harness";
import { stackArgs } from "./args";
import { one, pemBodyLines, plainInputStrings, T } from "./helpers";

const PATH = "/mailstack/mailstack/test/mail";
const ALICE_PASSWORD = "correct horse battery staple";
/** Alice's phone's app password, given plain; bob's scanner's, given as a hash, for submission only. */
const PHONE_PASSWORD = "k3Jx9wQp2vLm8RtZ-phone";
const SCANNER_HASH = hashPassword("scanner app password, long", "elsewhere", "made by doveadm pw");
/** The full config, with app passwords: bob's own password refused. */
function withAppPasswords(): MailConfigInput {
  const input = fullConfig();
  input.mailboxes[0] = { ...input.mailboxes[0], appPasswords: [{ name: "phone", password: PHONE_PASSWORD }] };
  input.mailboxes[1] = { ...input.mailboxes[1], appPasswords: [{ name: "scanner", passwordHash: SCANNER_HASH, services: ["submission"] }], requireAppPasswords: true };
  return input;
}
/** The runtime files that are keys, each in a parameter of its own, with the default DKIM selector. */
const KEY_FILES = ["backup/restic-password", "dkim/mail.key", "tls/key.pem"];
const RUNTIME_OBJECT_KEY = `host${PATH}/runtime.json`;
const BUCKET_OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2";

let full: Run;
let stack: MailStack;
let single: Run;
let many: Run;
const MANY = 1000;

/** n mailboxes, each given by hash. */
function mailboxesByHash(n: number): MailConfigInput {
  return {
    domain: "example.com",
    mailboxes: Array.from({ length: n }, (_, i) => ({ address: `user${String(i).padStart(4, "0")}@example.com`, passwordHash: SAMPLE_HASH, quota: "2G" })),
  };
}

beforeAll(async () => {
  full = await runProgram(() => {
    stack = new MailStack("mail", stackArgs(withAppPasswords()));
    // Every output the reference program exports, the secret one included.
    return {
      publicIp: stack.publicIp,
      hostname: stack.hostname,
      instanceId: stack.instanceId,
      dnsRecords: stack.dnsRecords,
      backupBucket: stack.backupBucketName,
      resticRepository: stack.resticRepository,
      resticPassword: stack.resticPassword,
      nextSteps: stack.nextSteps,
    };
  });
  single = await runProgram(() => {
    new MailStack("mail", stackArgs(mailboxesByHash(1)));
  });
  many = await runProgram(() => {
    new MailStack("mail", stackArgs(mailboxesByHash(MANY)));
  });
});

/** The MailParameters component, which owns every runtime-file parameter and the runtime object. */
const component = (run: Run) => one(run, "mailstack:aws:MailParameters");

/** The parameters of the runtime files (MailParameters' children), the manifest included. */
const runtimeParameters = (run: Run) => run.ofType(T.parameter).filter((p) => p.parent === component(run).urn);

/** The runtime parameter at a path below the stack's prefix. */
const parameter = (run: Run, suffix: string) => {
  const found = runtimeParameters(run).filter((p) => p.inputs.name === `${PATH}/${suffix}`);
  if (found.length !== 1) throw new Error(`expected one parameter ${suffix}, found ${found.length}`);
  return found[0];
};

/** The runtime object (MailParameters' one S3 object; the host bundle is MailHost's). */
const runtimeObject = (run: Run) => {
  const found = run.ofType(BUCKET_OBJECT).filter((o) => o.parent === component(run).urn);
  if (found.length !== 1) throw new Error(`expected one runtime object, found ${found.length}`);
  return found[0];
};

/** The files the runtime object carries, by name. */
const objectFiles = (run: Run): Record<string, string> => {
  const document = JSON.parse(runtimeObject(run).inputs.content) as Record<string, unknown>;
  expect(Object.keys(document)).toEqual(["files"]);
  return document.files as Record<string, string>;
};

const manifestOf = (run: Run) => JSON.parse(parameter(run, "manifest").inputs.value) as Manifest;

const sha256 = (content: string) => createHash("sha256").update(content, "utf8").digest("hex");

/** Every runtime file put back together as the host does: from where the manifest says, checked against its hash. */
function reassemble(run: Run): Map<string, string> {
  const inObject = objectFiles(run);
  const files = new Map<string, string>();
  for (const entry of manifestOf(run).files) {
    const content =
      entry.source === "parameter"
        ? (parameter(run, `files/${entry.name}`).inputs.value as unknown)
        : entry.source === "object" && Object.hasOwn(inObject, entry.name)
          ? inObject[entry.name]
          : undefined;
    if (typeof content !== "string") throw new Error(`${entry.name} (${entry.source}) is not where the manifest says`);
    expect({ file: entry.name, sha256: sha256(content) }).toEqual({ file: entry.name, sha256: entry.sha256 });
    files.set(entry.name, content);
  }
  return files;
}

describe("SSM parameters and the runtime object", () => {
  test("runtime-file parameters are SecureStrings under the stack's path, secret, one per key file and the manifest", () => {
    for (const run of [full, single, many]) {
      const parameters = runtimeParameters(run);
      expect(parameters.map((p) => p.inputs.name).sort()).toEqual([...KEY_FILES.map((f) => `${PATH}/files/${f}`), `${PATH}/manifest`].sort());
      for (const p of parameters) {
        expect(p.inputs.type).toBe("SecureString");
        expect(p.inputs.name.startsWith(`${PATH}/`)).toBe(true);
        expect(p.secretPaths).toContain("value");
        expect(typeof p.inputs.value).toBe("string");
        expect(Buffer.byteLength(p.inputs.value, "utf8")).toBeLessThanOrEqual(PARAMETER_LIMIT);
      }
      // No runtime file travels in anyone else's parameter; the host bundle's pointer is MailHost's, not one of these.
      const elsewhere = run.ofType(T.parameter).filter((p) => !parameters.includes(p));
      for (const p of elsewhere) expect(p.inputs.name).not.toMatch(new RegExp(`^${PATH}/(files/|manifest$)`));
      expect(elsewhere.map((p) => p.inputs.name)).toContain(`${PATH}/host-bundle`);
    }
  });

  test("the manifest is written after every key parameter and the runtime object", () => {
    for (const run of [full, single, many]) {
      const manifest = parameter(run, "manifest");
      const keys = runtimeParameters(run).filter((p) => p !== manifest);
      expect(keys).toHaveLength(KEY_FILES.length);
      for (const p of keys) expect(manifest.dependsOn).toContain(p.urn);
      expect(manifest.dependsOn).toContain(runtimeObject(run).urn);
    }
  });

  test("the runtime object: in the backup bucket at host<path>/runtime.json, SSE-KMS, SHA-256 checksum, content secret", () => {
    // The bucket MailBackup made, whose name the stack exports.
    expect(full.named("mail-backup-bucket").state.bucket).toBe(full.outputs.backupBucket);
    for (const run of [full, single, many]) {
      const bucket: string = run.named("mail-backup-bucket").state.bucket;
      expect(bucket).toMatch(/^mail-backup-bucket-/);
      const object = runtimeObject(run);
      expect(object.inputs.bucket).toBe(bucket);
      expect(object.inputs.key).toBe(RUNTIME_OBJECT_KEY);
      expect(object.inputs.serverSideEncryption).toBe("aws:kms");
      expect(object.inputs.checksumAlgorithm).toBe("SHA256");
      expect(object.secretPaths).toContain("content");
      expect(typeof object.inputs.content).toBe("string");
      // The host fetches the object from where the manifest says it is.
      expect(manifestOf(run).object).toEqual({ bucket, key: RUNTIME_OBJECT_KEY, endpoint: "https://s3.us-east-1.amazonaws.com" });
    }
  });

  test("every runtime file, put back together from the parameters and the object, matches the manifest", () => {
    for (const run of [full, single, many]) {
      const manifest = manifestOf(run);
      expect(manifest.version).toBe(2);
      const files = reassemble(run);
      expect([...files.keys()]).toEqual(manifest.files.map((f) => f.name));
      // Keys in parameters, everything else in the object, and nothing in both or neither.
      expect(manifest.files.filter((f) => f.source === "parameter").map((f) => f.name)).toEqual(KEY_FILES);
      expect(Object.keys(objectFiles(run)).sort()).toEqual(manifest.files.filter((f) => f.source === "object").map((f) => f.name).sort());
      expect(files.get("domains")).toBe(run === full ? "example.com OK\nexample.org OK\n" : "example.com OK\n");
    }
  });

  test("1000 mailboxes given by hash take the same parameters as one, and the users file is whole in the object", () => {
    const names = (run: Run) => runtimeParameters(run).map((p) => p.inputs.name).sort();
    expect(names(many)).toEqual(names(single));
    expect(runtimeParameters(many)).toHaveLength(KEY_FILES.length + 1);
    const users = objectFiles(many).users;
    expect(sha256(users)).toBe(manifestOf(many).files.find((f) => f.name === "users")!.sha256);
    const lines = users.split("\n");
    expect(lines.pop()).toBe("");
    expect(lines).toHaveLength(MANY);
    lines.forEach((line, i) => expect(line).toBe(`user${String(i).padStart(4, "0")}@example.com:${SAMPLE_HASH}::::::userdb_quota_rule=*:storage=2048M`));
    expect(objectFiles(single).users).toBe(`user0000@example.com:${SAMPLE_HASH}::::::userdb_quota_rule=*:storage=2048M\n`);
  });
});

describe("secrets", () => {
  const aliceHash = () => hashPassword(ALICE_PASSWORD, "alice@example.com", PATH);
  const phoneHash = () => hashPassword(PHONE_PASSWORD, "alice@example.com/phone", PATH);
  // The DKIM key of the signing selector and the host's TLS key.
  const dkimKey = (run: Run) => run.named("mail-dkim-mail-key");
  const tlsKey = (run: Run) => run.named("mail-tls-key");
  /**
   * Lines of a private key PEM that carry private material: the private encoding and
   * SubjectPublicKeyInfo can hold the public part at a base64-aligned offset, so lines of it
   * also appear, rightly, in the public DKIM record.
   */
  const privateKeyLines = (key: RecordedResource, atLeast: number): string[] => {
    const publicBody = String(key.state.publicKeyPem).replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
    const lines = pemBodyLines(key.state.privateKeyPem).filter((l) => !publicBody.includes(l));
    expect(lines.length).toBeGreaterThanOrEqual(atLeast);
    return lines;
  };
  const resticPassword = (run: Run): string => one(run, "random:index/randomPassword:RandomPassword").state.result;
  /** Strings that must never appear outside a secret. */
  const needles = (run: Run) => {
    const hashes = [aliceHash(), SAMPLE_HASH, phoneHash(), SCANNER_HASH];
    return [
      ALICE_PASSWORD,
      PHONE_PASSWORD,
      resticPassword(run),
      ...hashes,
      // The hashes without their {SCHEME} prefix, and their salt+digest part alone.
      ...hashes.map((h) => h.replace(/^\{[A-Z0-9-]+\}/, "")),
      ...hashes.map((h) => h.slice(-53)),
      // RSA-2048 in PKCS#1 spans 25 lines; ECDSA P-256 in SEC1, 3.
      ...privateKeyLines(dkimKey(run), 10),
      ...privateKeyLines(tlsKey(run), 2),
      "PRIVATE KEY",
    ];
  };

  test("the secrets are real: the runtime object carries the hashes, the key parameters the keys", () => {
    const users = objectFiles(full).users;
    expect(users).toContain(`alice@example.com:${aliceHash()}:`);
    expect(users).toContain(`bob@example.com:${SAMPLE_HASH}:`);
    // Alice's phone on every protocol of this host (POP3 is on), bob's scanner on submission only.
    expect(objectFiles(full)["app-passwords"]).toBe(
      [
        `alice@example.com/imap/1:${phoneHash()}`,
        `alice@example.com/pop3/1:${phoneHash()}`,
        `alice@example.com/smtp/1:${phoneHash()}`,
        "bob@example.com/app-passwords-only:",
        `bob@example.com/smtp/1:${SCANNER_HASH}`,
        "",
      ].join("\n"),
    );
    const key: string = dkimKey(full).state.privateKeyPem;
    expect(key).toContain("RSA PRIVATE KEY");
    expect(parameter(full, "files/dkim/mail.key").inputs.value).toBe(`${key.trim()}\n`);
    const tls: string = tlsKey(full).state.privateKeyPem;
    expect(tls).toContain("EC PRIVATE KEY");
    expect(parameter(full, "files/tls/key.pem").inputs.value).toBe(`${tls.trim()}\n`);
    expect(resticPassword(full)).toMatch(/^[A-Za-z0-9]{48}$/);
    expect(parameter(full, "files/backup/restic-password").inputs.value).toBe(`${resticPassword(full)}\n`);
  });

  test("the runtime object holds no private key and no restic password", () => {
    const content: string = runtimeObject(full).inputs.content;
    const keyMaterial = ["PRIVATE KEY", resticPassword(full), ...privateKeyLines(dkimKey(full), 10), ...privateKeyLines(tlsKey(full), 2)];
    for (const needle of keyMaterial) expect({ needle, found: content.includes(needle) }).toEqual({ needle, found: false });
  });

  test("the restic password reaches the cloud only as a SecureString value, marked secret", () => {
    const holders = full.record.resources.filter((r) => JSON.stringify(r.inputs).includes(resticPassword(full)));
    expect(holders.map((r) => r.name).sort()).toEqual(["mail-parameters-backup-restic-password"]);
    expect(holders[0].type).toBe(T.parameter);
    expect(holders[0].inputs.type).toBe("SecureString");
    expect(holders[0].secretPaths).toContain("value");
  });

  test("the restic password is a secret output of the backup and the stack; no other output holds it or any other secret", async () => {
    expect(await pulumi.isSecret(stack.backup.resticPassword)).toBe(true);
    expect(await pulumi.isSecret(stack.resticPassword)).toBe(true);
    expect(full.outputs.resticPassword).toBe(resticPassword(full));
    expect(await pulumi.isSecret(stack.resticRepository)).toBe(false);
    const plain = Object.entries(full.outputs).filter(([key]) => key !== "resticPassword");
    expect(plain.map(([key]) => key).sort()).toEqual(["backupBucket", "dnsRecords", "hostname", "instanceId", "nextSteps", "publicIp", "resticRepository"]);
    const text = JSON.stringify(Object.fromEntries(plain));
    for (const needle of needles(full)) expect({ needle, found: text.includes(needle) }).toEqual({ needle, found: false });
  });

  test("the user data holds no password, hash or private key", () => {
    const userData = full.userData();
    expect(userData.startsWith("#cloud-config\n")).toBe(true);
    for (const needle of needles(full)) expect({ needle, found: userData.includes(needle) }).toEqual({ needle, found: false });
    expect(userData).not.toMatch(/\$2[aby]\$\d\d\$/); // no bcrypt hash at all
  });

  test("no resource input that is not a Pulumi secret holds a password, hash or private key", () => {
    const all = needles(full);
    let checked = 0;
    for (const resource of full.record.resources) {
      for (const leaf of plainInputStrings(resource)) {
        checked++;
        for (const needle of all) {
          if (leaf.value.includes(needle)) throw new Error(`${resource.name} input ${leaf.path} holds secret material (${needle.slice(0, 20)}…)`);
        }
      }
    }
    expect(checked).toBeGreaterThan(200);
  });

  test("the DKIM and TLS private keys are secret outputs of the key resources and of the components", async () => {
    expect(full.ofType(T.privateKey).map((k) => k.name).sort()).toEqual(["mail-dkim-mail-key", "mail-tls-key"]);
    for (const key of [dkimKey(full), tlsKey(full)]) expect(key.additionalSecretOutputs).toContain("privateKeyPem");
    expect(dkimKey(full).inputs).toEqual({ algorithm: "RSA", rsaBits: 2048 });
    expect(tlsKey(full).inputs).toEqual({ algorithm: "ECDSA", ecdsaCurve: "P256" });
    expect(await pulumi.isSecret(stack.dkim.privateKeyPem)).toBe(true);
    expect(await pulumi.isSecret(stack.tlsKey.privateKeyPem)).toBe(true);
  });
});

describe("the LDAP directory's bind password", () => {
  const BIND_PASSWORD = "ldap bind #secret \"quoted\" 7Qv";
  const LDAP = { url: "ldaps://ldap.example.com", bindDn: "cn=mail,ou=services,dc=example,dc=com", baseDn: "ou=people,dc=example,dc=com" };
  let ldap: Run;
  let read: MailStackArgs | undefined;
  beforeAll(async () => {
    // As the reference program reads it: stack config, the whole `ldap` key a Pulumi secret.
    ldap = await runProgram(
      () => {
        read = readStackConfig();
        const ldapStack = new MailStack("mail", read);
        return { hostname: ldapStack.hostname, resticPassword: ldapStack.resticPassword, nextSteps: ldapStack.nextSteps };
      },
      {
        config: {
          "mailstack:domain": "example.com",
          "mailstack:mailboxes": JSON.stringify([{ address: "alice@example.com", password: ALICE_PASSWORD }]),
          "mailstack:ldap": JSON.stringify({ ...LDAP, bindPassword: BIND_PASSWORD }),
        },
        secretKeys: ["mailstack:mailboxes", "mailstack:ldap"],
      },
    );
  });

  test("comes out of stack config as a Pulumi secret", async () => {
    expect(await pulumi.isSecret(pulumi.output(read!.ldap!.bindPassword))).toBe(true);
  });

  test("reaches the host only in the two LDAP key parameters, SecureStrings marked secret", () => {
    const holders = ldap.record.resources.filter((r) => JSON.stringify(r.inputs).includes(JSON.stringify(BIND_PASSWORD).slice(1, -1)) || JSON.stringify(r.inputs).includes("ldap bind #secret"));
    expect(holders.map((r) => r.name).sort()).toEqual(["mail-parameters-ldap-dovecot-bind", "mail-parameters-ldap-postfix-map-cf"]);
    for (const holder of holders) {
      expect(holder.type).toBe(T.parameter);
      expect(holder.inputs.type).toBe("SecureString");
      expect(holder.secretPaths).toContain("value");
    }
    expect(parameter(ldap, "files/ldap/dovecot-bind").inputs.value).toBe('dnpass = "ldap bind #secret \\"quoted\\" 7Qv"\n');
    expect(parameter(ldap, "files/ldap/postfix-map.cf").inputs.value).toContain(`\nbind_pw = ${BIND_PASSWORD}\n`);
    expect(manifestOf(ldap).files.filter((f) => f.source === "parameter").map((f) => f.name)).toEqual([...KEY_FILES.slice(0, 2), "ldap/dovecot-bind", "ldap/postfix-map.cf", KEY_FILES[2]]);
  });

  test("is in no user data, plain output, plain input, host bundle or runtime object", () => {
    expect(ldap.userData()).not.toContain("ldap bind");
    expect(JSON.stringify(ldap.outputs)).not.toContain("ldap bind");
    expect(runtimeObject(ldap).inputs.content).not.toContain("ldap bind");
    for (const resource of ldap.record.resources) {
      for (const leaf of plainInputStrings(resource)) expect({ at: `${resource.name} ${leaf.path}`, found: leaf.value.includes("ldap bind") }).toEqual({ at: `${resource.name} ${leaf.path}`, found: false });
    }
    // The host bundle names the directory, not the password.
    const bundle = ldap.record.resources.filter((r) => typeof r.inputs.content === "string" && r.inputs.content.includes("dovecot-ldap.conf.ext"));
    expect(bundle.length).toBeGreaterThan(0);
  });
});
