const QUOTA = /^(\d+(?:\.\d+)?)\s*([MGT])i?B?$/i;
const MIB_PER_UNIT = { M: 1, G: 1024, T: 1024 * 1024 };

/**
 * A mailbox quota in MiB: undefined for `unlimited`, "invalid" for anything that is not a
 * size of at least 1 MiB. Units are binary however they are spelt: 5G, 5GB and 5GiB alike.
 */
export function quotaMiB(quota: string): number | undefined | "invalid" {
  if (quota.trim().toLowerCase() === "unlimited") return undefined;
  const match = QUOTA.exec(quota.trim());
  if (!match) return "invalid";
  const mib = Math.round(Number(match[1]) * MIB_PER_UNIT[match[2].toUpperCase() as keyof typeof MIB_PER_UNIT]);
  return mib >= 1 ? mib : "invalid";
}
