import { execFileSync } from "node:child_process";
import { BCRYPT_COST, checkPasswordHash, hashPassword } from "@mailstack/core";

const PREFIX = "{BLF-CRYPT}";

/**
 * crypt(3) from the system's libxcrypt, through python3's crypt module: an implementation
 * independent of bcryptjs. Throws (failing the test) when python3 or its crypt module is missing.
 */
function systemCrypt(password: string, setting: string): string {
  return execFileSync("python3", ["-c", "import crypt,sys; print(crypt.crypt(sys.argv[1], sys.argv[2]))", password, setting], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PYTHONWARNINGS: "ignore", PYTHONUTF8: "1" },
  }).trim();
}

/** The parts of a {BLF-CRYPT}$2b$NN$<22 salt><31 hash> string. */
function parts(hash: string) {
  const match = /^\{BLF-CRYPT\}\$2b\$(\d\d)\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})$/.exec(hash);
  if (!match) throw new Error(`not a {BLF-CRYPT} $2b$ hash: ${hash}`);
  return { cost: Number(match[1]), salt: match[2], digest: match[3] };
}

// Computed once: bcrypt at cost 10 takes a noticeable fraction of a second each.
const PASSWORD = "correct horse battery staple";
const base = hashPassword(PASSWORD, "alice@example.com", "organization/mailstack/prod");

describe("hashPassword", () => {
  test("produces a well-formed {BLF-CRYPT} $2b$ hash at BCRYPT_COST", () => {
    expect(base.startsWith(PREFIX)).toBe(true);
    expect(parts(base).cost).toBe(BCRYPT_COST);
    expect(BCRYPT_COST).toBe(10);
    expect(checkPasswordHash(base)).toBeUndefined();
    expect(base).toHaveLength(71);
  });

  test("is deterministic for (password, address, context)", () => {
    expect(hashPassword(PASSWORD, "alice@example.com", "organization/mailstack/prod")).toBe(base);
  });

  test("differs across passwords, addresses and contexts", () => {
    const otherPassword = hashPassword("a different passphrase", "alice@example.com", "organization/mailstack/prod");
    const otherAddress = hashPassword(PASSWORD, "bob@example.com", "organization/mailstack/prod");
    const otherContext = hashPassword(PASSWORD, "alice@example.com", "organization/mailstack/staging");
    const all = [base, otherPassword, otherAddress, otherContext];
    expect(new Set(all).size).toBe(all.length);
    expect(new Set(all.map((h) => parts(h).digest)).size).toBe(all.length);

    // The salt depends on address and context only, never on the password.
    expect(parts(otherPassword).salt).toBe(parts(base).salt);
    expect(parts(otherAddress).salt).not.toBe(parts(base).salt);
    expect(parts(otherContext).salt).not.toBe(parts(base).salt);
    for (const h of all) expect(checkPasswordHash(h)).toBeUndefined();
  });

  test("address and context are kept apart in the salt seed", () => {
    // Without a separator these two would hash the same seed text ("stack-ab@example.com").
    const a = parts(hashPassword(PASSWORD, "b@example.com", "stack-a")).salt;
    const b = parts(hashPassword(PASSWORD, "ab@example.com", "stack-")).salt;
    expect(a).not.toBe(b);
  });

  test("the salt's last character carries only the bits bcrypt uses", () => {
    // 16 salt bytes are 22 base64 characters; the last one holds 2 bits, so it is one of . O e u.
    for (const address of ["alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"]) {
      const salt = parts(hashPassword(PASSWORD, address, "ctx")).salt;
      expect(".Oeu").toContain(salt[21]);
    }
  });

  describe("verifies with the system's crypt(3) (libxcrypt via python3)", () => {
    test("the python3 crypt module is available and computes bcrypt", () => {
      // A known vector (OpenBSD's bcrypt test suite): "U*U" with this salt.
      expect(systemCrypt("U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.")).toBe("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW");
    });

    test.each([
      [PASSWORD, "alice@example.com", "organization/mailstack/prod"],
      ["Tr0ub4dor&3-xkcd-936!", "bob@example.org", "dev"],
      ["pässwörd mit Ümlauten €", "anna@xn--bcher-kva.example", "organization/mailstack/prod"],
      ['quotes " and \' and \\ and $ and spaces', "carol@example.com", "o/p/s"],
      ["x".repeat(72), "dave@example.com", "o/p/s"],
    ])("%j for %s", (password, address, context) => {
      const hash = password === PASSWORD && context === "organization/mailstack/prod" && address === "alice@example.com" ? base : hashPassword(password, address, context);
      const crypted = hash.slice(PREFIX.length);
      // crypt(password, stored) === stored is how Dovecot checks a login.
      expect(systemCrypt(password, crypted)).toBe(crypted);
      // And a wrong password does not match.
      // (bcrypt reads 72 bytes at most, so a 72-byte password is changed rather than extended.)
      const wrong = Buffer.byteLength(password) >= 72 ? `${password.slice(0, -1)}?` : `${password}!`;
      expect(systemCrypt(wrong, crypted)).not.toBe(crypted);
    });

    test("the salt alone reproduces the hash in libxcrypt", () => {
      const { cost, salt } = parts(base);
      const setting = `$2b$${String(cost).padStart(2, "0")}$${salt}`;
      expect(systemCrypt(PASSWORD, setting)).toBe(base.slice(PREFIX.length));
    });
  });
});
