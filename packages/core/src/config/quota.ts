const QUOTA = /^(\d+(?:\.\d+)?)\s*([MGT])i?B?$/i;
const MIB_PER_UNIT = { M: 1, G: 1024, T: 1024 * 1024 };

/**
 * The largest mailbox quota, 1024T in MiB: far above any data volume, and small enough that the
 * users file writes it as a whole number (a larger one came out as `1e+33M` or `InfinityM`).
 */
export const MAX_QUOTA_MIB = 1024 ** 3;

/**
 * A mailbox quota in MiB: undefined for `unlimited`, "invalid" for anything that is not a
 * size from 1 MiB to {@link MAX_QUOTA_MIB}. Units are binary however they are spelt: 5G, 5GB
 * and 5GiB alike.
 */
export function quotaMiB(quota: string): number | undefined | "invalid" {
  if (quota.trim().toLowerCase() === "unlimited") return undefined;
  const match = QUOTA.exec(quota.trim());
  if (!match) return "invalid";
  const mib = Math.round(Number(match[1]) * MIB_PER_UNIT[match[2].toUpperCase() as keyof typeof MIB_PER_UNIT]);
  return mib >= 1 && mib <= MAX_QUOTA_MIB ? mib : "invalid";
}

/** Why a mailbox quota is not one, with the fix, or undefined when it is. */
export function quotaProblem(quota: string): string | undefined {
  if (quotaMiB(quota) !== "invalid") return undefined;
  const match = QUOTA.exec(quota.trim());
  if (match && Number(match[1]) * MIB_PER_UNIT[match[2].toUpperCase() as keyof typeof MIB_PER_UNIT] > MAX_QUOTA_MIB) {
    return `${JSON.stringify(quota)} is larger than the largest quota, 1024T; write a smaller size or unlimited`;
  }
  return `${JSON.stringify(quota)} is not a size; write e.g. 500M, 5G, 1T or unlimited`;
}
