import { closest } from "./config/suggest";

/** The CPU architecture of an instance type, which the AMI must match. */
export type Architecture = "arm64" | "x86_64";

// EC2 families this project knows the CPU architecture of. Instance types outside this
// table are refused unless `architecture` is given, because the AMI must match the CPU.
const ARM64_FAMILIES = [
  "a1", "t4g",
  "m6g", "m6gd", "m7g", "m7gd", "m8g", "m8gd",
  "c6g", "c6gd", "c6gn", "c7g", "c7gd", "c7gn", "c8g", "c8gd",
  "r6g", "r6gd", "r7g", "r7gd", "r8g", "r8gd",
  "x2gd", "i4g", "i8g", "im4gn", "is4gen",
];
const X86_64_FAMILIES = [
  "t2", "t3", "t3a",
  "m5", "m5a", "m5ad", "m5d", "m5dn", "m5n", "m5zn", "m6a", "m6i", "m6id", "m6idn", "m6in",
  "m7a", "m7i", "m7i-flex", "m8a", "m8i",
  "c5", "c5a", "c5ad", "c5d", "c5n", "c6a", "c6i", "c6id", "c6in", "c7a", "c7i", "c7i-flex", "c8i",
  "r5", "r5a", "r5ad", "r5b", "r5d", "r5dn", "r5n", "r6a", "r6i", "r6id", "r6idn", "r6in",
  "r7a", "r7i", "r7iz", "r8i", "z1d", "i3", "i3en", "i4i", "x2idn", "x2iedn",
];
const FAMILY_ARCH = new Map<string, Architecture>([
  ...ARM64_FAMILIES.map((f) => [f, "arm64"] as const),
  ...X86_64_FAMILIES.map((f) => [f, "x86_64"] as const),
]);

// Sizes EC2 offers: the named ones, N times xlarge, bare metal and metal-Nxl. Typos are
// refused here, with the nearest size, rather than by EC2 in the middle of a deployment.
const NAMED_SIZES = ["nano", "micro", "small", "medium", "large", "xlarge", "metal"];
const SIZE = /^(?:nano|micro|small|medium|large|xlarge|metal|(?:[2-9]|[1-9]\d+)xlarge|metal-[1-9]\d*xl)$/;
const SUGGESTED_SIZES = [...NAMED_SIZES, ...[2, 4, 8, 12, 16, 24, 32, 48].map((n) => `${n}xlarge`)];

// Sizes with less than 2 GiB of memory: rspamd alone needs ~300 MiB PSS warm and ~700 MiB
// RSS while compiling its regexp cache on first start.
const TOO_SMALL = new Set(["nano", "micro"]);

/** What checking an instance type found: its architecture, or why it cannot be used. */
export type InstanceTypeInfo =
  | {
      /** Usable. */
      ok: true;
      /** Its CPU architecture. */
      architecture: Architecture;
    }
  | {
      /** Not usable. */
      ok: false;
      /** Why, and what to do. */
      error: string;
    };

/** Architecture of an instance type, cross-checked against an explicit `architecture`. */
export function instanceArchitecture(instanceType: string, explicit?: Architecture): InstanceTypeInfo {
  const match = /^([a-z0-9-]+)\.([a-z0-9-]+)$/.exec(instanceType);
  if (!match) {
    return { ok: false, error: `"${instanceType}" is not an EC2 instance type; write it as family.size, e.g. t4g.small` };
  }
  const [, family, size] = match;
  if (!SIZE.test(size)) {
    const near = closest(size, SUGGESTED_SIZES);
    const fix = near ? `did you mean ${family}.${near}?` : `sizes are ${NAMED_SIZES.join(", ")}, 2xlarge, 4xlarge, … and metal-24xl, …`;
    return { ok: false, error: `"${instanceType}" is not an EC2 instance type: EC2 has no size "${size}"; ${fix}` };
  }
  if (TOO_SMALL.has(size)) {
    return {
      ok: false,
      error: `"${instanceType}" has under 2 GiB of memory, too little for rspamd and Dovecot; use a .small or larger (e.g. t4g.small)`,
    };
  }
  const known = FAMILY_ARCH.get(family);
  if (known === undefined) {
    if (explicit) return { ok: true, architecture: explicit };
    return {
      ok: false,
      error: `instance family "${family}" is not in mailstack's architecture table; set architecture to arm64 or x86_64, or use a known family such as t4g or t3`,
    };
  }
  if (explicit && explicit !== known) {
    return {
      ok: false,
      error: `"${instanceType}" is ${known}, but architecture says ${explicit}; remove architecture or make them agree`,
    };
  }
  return { ok: true, architecture: known };
}
