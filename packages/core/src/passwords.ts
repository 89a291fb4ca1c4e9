import { createHash } from "node:crypto";
import * as bcrypt from "bcryptjs";

/** bcrypt work factor: 2^10 rounds, ~0.1 s per hash; Dovecot's auth cache absorbs it per login. */
export const BCRYPT_COST = 10;

/**
 * The bcrypt salt of a mailbox, derived from the stack context and the address instead of
 * drawn at random, so the same password yields the same hash on every run and the users file
 * shows no spurious diff. It never depends on the password: that would let a guesser check
 * candidates against the salt without bcrypt.
 */
function saltFor(address: string, context: string): string {
  const seed = createHash("sha256").update(`mailstack-salt\0${context}\0${address}`).digest();
  return `$2b$${String(BCRYPT_COST).padStart(2, "0")}$${bcrypt.encodeBase64(seed.subarray(0, 16), 16)}`;
}

/** Hashes a mailbox password for Dovecot as {BLF-CRYPT}, e.g. to write a `passwordHash` by hand. */
export function hashPassword(password: string, address: string, context: string): string {
  return `{BLF-CRYPT}${bcrypt.hashSync(password, saltFor(address, context))}`;
}

/** {@link hashPassword} without blocking the event loop, for batches. Same result. */
export async function hashPasswordAsync(password: string, address: string, context: string): Promise<string> {
  return `{BLF-CRYPT}${await bcrypt.hash(password, saltFor(address, context))}`;
}
