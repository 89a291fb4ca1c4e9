// Where secrets go: SSM SecureString parameters (as Pulumi secrets), never user data or any
// other plain input; and which changes leave the user data (hence the instance) alone.
import { createHash } from "node:crypto";
import { hashPassword, type MailConfigInput, type Manifest, parameterLayout, parseConfig, partName } from "@mailstack/core";
import { MailStack } from "@mailstack/pulumi";
import * as pulumi from "@pulumi/pulumi";
import { fullConfig, SAMPLE_HASH } from "../support/fixtures";
import { type RecordedResource, type Run, runProgram } from "../support/harness";
import { stackArgs } from "./args";
import { one, pemBodyLines, plainInputStrings, T } from "./helpers";

const PATH = "/mailstack/test/mail";
const ALICE_PASSWORD = "correct horse battery staple";

let full: Run;
let stack: MailStack;
let many: Run;
const MANY = 1000;

function manyMailboxes(): MailConfigInput {
  return {
    domain: "example.com",
    mailboxes: Array.from({ length: MANY }, (_, i) => ({ address: `user${String(i).padStart(4, "0")}@example.com`, passwordHash: SAMPLE_HASH, quota: "2G" })),
  };
}

beforeAll(async () => {
  full = await runProgram(() => {
    stack = new MailStack("mail", stackArgs(fullConfig()));
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
  many = await runProgram(() => {
    new MailStack("mail", stackArgs(manyMailboxes()));
  });
});

/** The parameter holding a path below the stack's prefix. */
const parameter = (run: Run, suffix: string) => {
  const found = run.ofType(T.parameter).filter((p) => p.inputs.name === `${PATH}/${suffix}`);
  if (found.length !== 1) throw new Error(`expected one parameter ${suffix}, found ${found.length}`);
  return found[0];
};

/** A runtime file put back together from its parameters, headers removed. */
function reassemble(run: Run, file: string, parts: number): string {
  return Array.from({ length: parts }, (_, i) => {
    const value: string = parameter(run, partName(file, i)).inputs.value;
    const header = `# mailstack ${file} ${i + 1}/${parts}\n`;
    expect(value.startsWith(header)).toBe(true);
    return value.slice(header.length);
  }).join("");
}

describe("SSM parameters", () => {
  test("are SecureStrings under the stack's path, secret, each at most 8192 bytes, as many as the layout says", () => {
    const cases: [Run, MailConfigInput][] = [
      [full, fullConfig()],
      [many, manyMailboxes()],
    ];
    for (const [run, input] of cases) {
      const layout = parameterLayout(parseConfig(input));
      const expectedNames = [
        ...Object.entries(layout.parts).flatMap(([file, n]) => Array.from({ length: n }, (_, i) => `${PATH}/${partName(file, i)}`)),
        `${PATH}/manifest`,
      ].sort();
      const parameters = run.ofType(T.parameter);
      expect(parameters.map((p) => p.inputs.name).sort()).toEqual(expectedNames);
      for (const p of parameters) {
        expect(p.inputs.type).toBe("SecureString");
        expect(p.inputs.name.startsWith(`${PATH}/`)).toBe(true);
        expect(p.secretPaths).toContain("value");
        expect(typeof p.inputs.value).toBe("string");
        expect(Buffer.byteLength(p.inputs.value, "utf8")).toBeLessThanOrEqual(8192);
      }
    }
  });

  test("1000 mailboxes given by hash fit in a handful of parameters, losslessly", () => {
    const layout = parameterLayout(parseConfig(manyMailboxes()));
    const expected = Object.values(layout.parts).reduce((a, b) => a + b, 0) + 1;
    const parameters = many.ofType(T.parameter);
    expect(parameters).toHaveLength(expected);
    // The users file grows with the mailboxes; every other file takes one parameter or two.
    expect(layout.parts.users).toBeGreaterThan(1); // the users file really is split
    // A part holds over 35 lines of the longest accepted hash.
    expect(layout.parts.users).toBeLessThan(MANY / 35);
    const users = reassemble(many, "users", layout.parts.users);
    const lines = users.split("\n").filter(Boolean);
    expect(lines).toHaveLength(MANY);
    expect(lines[MANY - 1]).toBe(`user0999@example.com:${SAMPLE_HASH}::::::userdb_quota_rule=*:storage=2048M`);
  });

  test("the manifest is written after every part and matches what the parts carry", () => {
    for (const run of [full, many]) {
      const manifest = parameter(run, "manifest");
      const parts = run.ofType(T.parameter).filter((p) => p !== manifest);
      for (const p of parts) expect(manifest.dependsOn).toContain(p.urn);
      const doc = JSON.parse(manifest.inputs.value) as Manifest;
      for (const file of doc.files) {
        const content = reassemble(run, file.name, file.parts);
        expect({ file: file.name, sha256: createHash("sha256").update(content, "utf8").digest("hex") }).toEqual({ file: file.name, sha256: file.sha256 });
      }
    }
  });
});

describe("secrets", () => {
  const aliceHash = () => hashPassword(ALICE_PASSWORD, "alice@example.com", PATH);
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
    const hashes = [aliceHash(), SAMPLE_HASH];
    return [
      ALICE_PASSWORD,
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

  test("the secrets are real: the users and DKIM parameters carry them", () => {
    const users: string = parameter(full, "files/users/0").inputs.value;
    expect(users).toContain(`alice@example.com:${aliceHash()}:`);
    expect(users).toContain(`bob@example.com:${SAMPLE_HASH}:`);
    const key: string = dkimKey(full).state.privateKeyPem;
    expect(key).toContain("RSA PRIVATE KEY");
    expect(parameter(full, "files/dkim/mail.key/0").inputs.value).toContain(key.trim());
    const tls: string = tlsKey(full).state.privateKeyPem;
    expect(tls).toContain("EC PRIVATE KEY");
    expect(parameter(full, "files/tls/key.pem/0").inputs.value).toContain(tls.trim());
    expect(resticPassword(full)).toMatch(/^[A-Za-z0-9]{48}$/);
    expect(parameter(full, "files/backup/restic-password/0").inputs.value).toBe(`# mailstack backup/restic-password 1/1\n${resticPassword(full)}\n`);
  });

  test("the restic password reaches the cloud only as SecureString values, marked secret", () => {
    const holders = full.record.resources.filter((r) => JSON.stringify(r.inputs).includes(resticPassword(full)));
    expect(holders.map((r) => r.name).sort()).toEqual(["mail-parameters-backup-restic-password-0"]);
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
