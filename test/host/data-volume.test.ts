/**
 * mailstack-data-volume.sh on real loop devices: it formats only a blank volume, never one
 * that holds anything, and, run again at the next boot (by its unit), mounts the same volume
 * and binds again. It writes no fstab line: the unit, not fstab, mounts the volume at boot.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DATA_VOLUME_LABEL } from "@mailstack/core";
import { requireRoot, requireTools, run, type RunResult, runOk, tempRoot } from "../support/tools";

requireTools("bash", "losetup", "mount", "umount", "mountpoint", "findmnt", "blkid", "mkfs.ext4", "sfdisk", "mkswap");
requireRoot("the suite attaches loop devices and mounts filesystems");

const SCRIPT = join(__dirname, "..", "..", "packages", "core", "scripts", "mailstack-data-volume.sh");
const IMAGE_MIB = 64;
// An instance's fstab, at the path the script took from MAILSTACK_FSTAB when it wrote fstab
// lines (so that a script that still did would write here, not to this machine's /etc/fstab).
const EXISTING_FSTAB = "# /etc/fstab: static file system information.\nLABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1\n";

let root: string;
let systemFstab: string;
const loops: string[] = [];

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** Mount points below `dir`, deepest (last mounted) first. */
function mountsUnder(dir: string): string[] {
  const targets = run("findmnt", ["-rn", "-o", "TARGET"]).stdout.split("\n").filter((t) => t === dir || t.startsWith(`${dir}/`));
  return targets.reverse();
}

/** What a reboot or an instance replacement does to the mounts: they are gone. */
function unmountUnder(dir: string): void {
  for (const target of mountsUnder(dir)) {
    if (run("umount", [target]).status !== 0) run("umount", ["-l", target]);
  }
}

const probe = (device: string, tag: string) => run("blkid", ["-p", "-s", tag, "-o", "value", device]).stdout.trim();
const isMountpoint = (path: string) => run("mountpoint", ["-q", path]).status === 0;

interface Volume {
  dir: string;
  image: string;
  device: string;
  mount: string;
  fstab: string;
  targets: { vmail: string; spool: string };
  run(): RunResult;
}

/** A file-backed block device and a host layout around it, all under one directory. */
function volume(name: string, prepare?: (image: string) => void): Volume {
  const dir = join(root, name);
  mkdirSync(dir);
  const image = join(dir, "disk.img");
  runOk("truncate", ["-s", `${IMAGE_MIB}M`, image]);
  prepare?.(image);
  const attached = run("losetup", ["--find", "--show", image]);
  if (attached.status !== 0) throw new Error(`losetup could not attach a loop device: ${attached.stderr}`);
  const device = attached.stdout.trim();
  loops.push(device);
  const targets = { vmail: join(dir, "var", "vmail"), spool: join(dir, "var", "spool", "postfix") };
  const fstab = join(dir, "fstab");
  writeFileSync(fstab, EXISTING_FSTAB);
  const mount = join(dir, "srv", "mailstack");
  return {
    dir,
    image,
    device,
    mount,
    fstab,
    targets,
    run: () =>
      run("bash", [SCRIPT], {
        env: {
          PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
          MAILSTACK_DATA_DEVICE: device,
          MAILSTACK_DATA_MOUNT: mount,
          MAILSTACK_FSTAB: fstab,
          MAILSTACK_DATA_BINDS: `vmail:${targets.vmail} postfix-spool:${targets.spool}`,
          MAILSTACK_DATA_LABEL: DATA_VOLUME_LABEL,
        },
      }),
  };
}

/** This machine's /etc/fstab as it is (or that there is none). */
const systemFstabNow = () => (existsSync("/etc/fstab") ? sha256("/etc/fstab") : "absent");

/** Neither the instance's fstab nor this machine's gained a line. */
function expectNoFstabLines(v: Volume): void {
  expect(readFileSync(v.fstab, "utf8")).toBe(EXISTING_FSTAB);
  expect(systemFstabNow()).toBe(systemFstab);
}

/** The volume's directory `dir` is what `target` shows: a bind mount of it, not a copy. */
function expectBound(v: Volume, dir: string, target: string): void {
  expect(isMountpoint(target)).toBe(true);
  const probeFile = join(target, `.bound-${process.pid}`);
  writeFileSync(probeFile, dir);
  expect(readFileSync(join(v.mount, dir, `.bound-${process.pid}`), "utf8")).toBe(dir);
  rmSync(probeFile);
}

describe("mailstack-data-volume on loop devices", () => {
  beforeAll(() => {
    root = tempRoot("ms-dv");
    systemFstab = systemFstabNow();
    // Loop support first: without it this suite cannot test anything, and says so.
    const image = join(root, "probe.img");
    runOk("truncate", ["-s", "1M", image]);
    const r = run("losetup", ["--find", "--show", image]);
    if (r.status !== 0) {
      throw new Error(`this kernel or container offers no loop devices (losetup: ${r.stderr.trim()}); the data volume tests need them`);
    }
    runOk("losetup", ["-d", r.stdout.trim()]);
  });

  afterAll(() => {
    if (!root) return;
    try {
      unmountUnder(root);
    } finally {
      for (const device of loops) run("losetup", ["-d", device]);
      run("rm", ["-rf", "--one-file-system", root]);
    }
  });

  test("a blank volume is formatted, labelled and mounted; the binds start from the targets' content", () => {
    const v = volume("blank");
    mkdirSync(v.targets.vmail, { recursive: true });
    mkdirSync(join(v.targets.spool, "private"), { recursive: true });
    writeFileSync(join(v.targets.vmail, "from-the-root-volume"), "seed\n");
    writeFileSync(join(v.targets.spool, "private", "marker"), "queue layout\n");

    const r = v.run();
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: expect.stringContaining("is blank; creating an ext4 filesystem") });
    expect(probe(v.device, "TYPE")).toBe("ext4");
    expect(probe(v.device, "LABEL")).toBe(DATA_VOLUME_LABEL);
    expect(runOk("findmnt", ["-n", "-o", "SOURCE,FSTYPE", "--mountpoint", v.mount]).stdout.trim().split(/\s+/)).toEqual([v.device, "ext4"]);

    // Each target is now the volume's directory, seeded with what the target held.
    for (const t of Object.values(v.targets)) expect(isMountpoint(t)).toBe(true);
    expect(readFileSync(join(v.mount, "vmail", "from-the-root-volume"), "utf8")).toBe("seed\n");
    expect(readFileSync(join(v.mount, "postfix-spool", "private", "marker"), "utf8")).toBe("queue layout\n");
    writeFileSync(join(v.targets.vmail, "new-mail"), "delivered\n");
    expect(readFileSync(join(v.mount, "vmail", "new-mail"), "utf8")).toBe("delivered\n");

    // Mounted with noatime, and not a line in any fstab: nothing but the script mounts it.
    expect(runOk("findmnt", ["-n", "-o", "OPTIONS", "--mountpoint", v.mount]).stdout.trim().split(",")).toContain("noatime");
    expectNoFstabLines(v);

    // After a reboot (the mounts are gone, the root volume's directories are empty) the script,
    // run again by its unit, mounts the volume and the binds again.
    unmountUnder(v.dir);
    expect(existsSync(join(v.targets.vmail, "new-mail"))).toBe(false);
    const again = v.run();
    expect({ status: again.status, stderr: again.stderr }).toEqual({ status: 0, stderr: expect.stringContaining("holds data; mounting it as it is") });
    expect(readFileSync(join(v.targets.vmail, "new-mail"), "utf8")).toBe("delivered\n");
    expectBound(v, "vmail", v.targets.vmail);
    expectBound(v, "postfix-spool", v.targets.spool);
    expectNoFstabLines(v);
  });

  test("a volume with a filesystem is never reformatted, on a second and a third boot", () => {
    const v = volume("reboots");
    expect(v.run().status).toBe(0);
    const uuid = probe(v.device, "UUID");
    writeFileSync(join(v.targets.vmail, "precious"), "mail that must survive\n");

    for (const boot of [2, 3]) {
      unmountUnder(v.dir);
      expect(isMountpoint(v.mount)).toBe(false);
      const r = v.run();
      expect({ boot, status: r.status }).toEqual({ boot, status: 0 });
      expect(r.stderr).toContain("holds data; mounting it as it is");
      expect(r.stderr).not.toContain("creating");
      expect(probe(v.device, "UUID")).toBe(uuid);
      expect(readFileSync(join(v.targets.vmail, "precious"), "utf8")).toBe("mail that must survive\n");
      expectBound(v, "vmail", v.targets.vmail);
      expectBound(v, "postfix-spool", v.targets.spool);
      expectNoFstabLines(v);
    }

    // Run again while everything is mounted (by hand, or the unit restarted): nothing is
    // mounted twice, and still no fstab line.
    const r = v.run();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("already mounted");
    expectNoFstabLines(v);
    const mounts = run("findmnt", ["-rn", "-o", "TARGET"]).stdout.split("\n");
    for (const target of [v.mount, ...Object.values(v.targets)]) expect(mounts.filter((m) => m === target)).toHaveLength(1);
  });

  test("a filesystem made elsewhere is mounted as it is, and keeps its own directories", () => {
    const v = volume("foreign", (image) => {
      runOk("mkfs.ext4", ["-q", "-L", "restored", image]);
    });
    // Mail already on the volume (say, a volume restored from a snapshot).
    const scratch = join(v.dir, "scratch");
    mkdirSync(scratch);
    runOk("mount", [v.device, scratch]);
    mkdirSync(join(scratch, "vmail", "example.com"), { recursive: true });
    writeFileSync(join(scratch, "vmail", "example.com", "old-mail"), "from the snapshot\n");
    runOk("umount", [scratch]);
    const uuid = probe(v.device, "UUID");
    // The new instance's root volume has its own, empty, package-made directories.
    mkdirSync(v.targets.vmail, { recursive: true });
    writeFileSync(join(v.targets.vmail, "root-volume-only"), "x\n");

    const r = v.run();
    expect(r.status).toBe(0);
    expect(probe(v.device, "UUID")).toBe(uuid);
    expect(probe(v.device, "LABEL")).toBe("restored");
    expect(readFileSync(join(v.targets.vmail, "example.com", "old-mail"), "utf8")).toBe("from the snapshot\n");
    expect(existsSync(join(v.targets.vmail, "root-volume-only"))).toBe(false);
    expectNoFstabLines(v);
  });

  test("a volume with a signature that is not a mountable filesystem (swap) is never formatted, and nothing is mounted", () => {
    const v = volume("swap", (image) => {
      runOk("mkswap", ["-L", "not-mail", image]);
    });
    expect(probe(v.device, "TYPE")).toBe("swap");
    const image = sha256(v.image);

    const r = v.run();
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("holds data; mounting it as it is");
    expect(r.stderr).not.toContain("creating");
    runOk("sync", []);
    expect(sha256(v.image)).toBe(image);
    expectNoFstabLines(v);
    expect(mountsUnder(v.dir)).toEqual([]);
  });

  test.each(["gpt", "dos"])("a volume with a %s partition table and no filesystem is refused and left untouched", (label) => {
    const v = volume(`partitioned-${label}`, (image) => {
      runOk("sfdisk", ["--quiet", image], { input: `label: ${label}\nsize=16MiB, type=L\n` });
    });
    expect(run("blkid", ["-p", "-s", "PTTYPE", "-o", "value", v.device]).stdout.trim()).toBe(label);
    mkdirSync(v.targets.vmail, { recursive: true });
    const image = sha256(v.image);

    const r = v.run();
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("not a filesystem");
    runOk("sync", []);
    expect(sha256(v.image)).toBe(image);
    expectNoFstabLines(v);
    expect(mountsUnder(v.dir)).toEqual([]);
  });
});
