const BCRYPT_MAX_BYTES = 72;
/** Fewest characters (Unicode code points, not bytes) a plain mailbox password may have. */
export const MIN_PASSWORD_LENGTH = 12;

/**
 * Fewest characters of a plain app password: it is typed once, into one client, so it can be
 * as long and random as a key (`openssl rand -base64 18`).
 */
export const MIN_APP_PASSWORD_LENGTH = 16;

/** Why a plain password is unusable, or undefined when it is fine. */
export function checkPassword(password: unknown, address: string, minLength = MIN_PASSWORD_LENGTH): string | undefined {
  if (typeof password !== "string") return "must be a string";
  if ([...password].length < minLength) {
    return `is shorter than ${minLength} characters; use a longer passphrase`;
  }
  if (Buffer.byteLength(password, "utf8") > BCRYPT_MAX_BYTES) {
    return `is longer than ${BCRYPT_MAX_BYTES} bytes, past which bcrypt ignores the rest; shorten it`;
  }
  const name = address.slice(0, address.indexOf("@"));
  if (name.length >= 3 && password.toLowerCase().includes(name)) {
    return "contains the mailbox name; choose a password unrelated to the address";
  }
  return undefined;
}

/** Dovecot schemes Ubuntu 24.04's Dovecot verifies and that resist offline guessing. */
const HASH_FORMATS: Record<string, RegExp> = {
  "BLF-CRYPT": /^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$/,
  "SHA512-CRYPT": /^\$6\$(rounds=\d+\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{86}$/,
  "SHA256-CRYPT": /^\$5\$(rounds=\d+\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{43}$/,
  ARGON2ID: /^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/,
  ARGON2I: /^\$argon2i\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/,
};
/** Longest accepted pre-hashed password, so the users file can be split at plan time. */
export const MAX_PASSWORD_HASH_LENGTH = 160;

/** Why a pre-hashed password is unusable, or undefined when it is fine. */
export function checkPasswordHash(hash: unknown): string | undefined {
  if (typeof hash !== "string") return "must be a string";
  const match = /^\{([A-Z0-9-]+)\}(.*)$/.exec(hash.trim());
  if (!match) {
    return "must start with its scheme, e.g. {BLF-CRYPT}$2b$…; create one with `doveadm pw -s BLF-CRYPT`";
  }
  const [, scheme, body] = match;
  const format = HASH_FORMATS[scheme];
  if (!format) {
    return `uses scheme {${scheme}}, which is weak or unsupported; use one of ${Object.keys(HASH_FORMATS).map((s) => `{${s}}`).join(", ")}`;
  }
  if (!format.test(body)) return `is not a well-formed {${scheme}} hash`;
  if (hash.trim().length > MAX_PASSWORD_HASH_LENGTH) return `is longer than ${MAX_PASSWORD_HASH_LENGTH} characters`;
  return undefined;
}
