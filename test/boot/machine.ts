/**
 * The boot test's world: a Debian 12 container booted by systemd-nspawn as an EC2 instance
 * boots (real systemd, real cloud-init, a NoCloud seed holding the plan's user data), and a
 * test-created "internet" around it.
 *
 *   root namespace ── msbup-<id> ══ up ── [internet ns] ── gw ══ ens5 ── [host ns: the container]
 *                     10.78.0.1      10.78.0.2          10.77.0.1   10.77.0.2
 *
 * The internet namespace is the container's gateway. It holds every stand-in (IMDS on
 * 169.254.169.254, SSM, S3, ACME, DNS: see internet.mjs), maps the stack's Elastic IP to the
 * container's private address as AWS's internet gateway does, and forwards nothing but the
 * Debian mirror to the root namespace, where an nftables allow-list lets only that out.
 * Clients ("the internet") run inside the internet namespace.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { lookup } from "node:dns/promises";
import { appendFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { sleep } from "../support/stack";
import { run, runAsync, runOk, type RunResult } from "../support/tools";

const CONTAINER_IP = "10.77.0.2";
const GATEWAY_IP = "10.77.0.1";
const UPLINK_ROOT = "10.78.0.1";
const UPLINK_NET = "10.78.0.2";
/** Where the stand-ins listen inside the internet namespace (internet.mjs binds them). */
export const STAND_INS = { imds: "169.254.169.254", ssm: "10.78.1.10", s3: "10.78.1.11", acme: "10.78.1.12", logs: "10.78.1.13", monitoring: "10.78.1.14", dns: "10.78.1.53", resolver: "10.78.1.54" };
const MIRROR = "deb.debian.org";

/** Whether `promise` settles within `ms`; the timer does not outlive it (no open handle). */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` until it returns a value, or throws after `seconds` with the last failure. */
export async function until<T>(what: string, seconds: number, check: () => Promise<T | undefined> | T | undefined, everyMs = 2000): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds} s waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await sleep(everyMs);
  }
}

/** The two namespaces, their links and the root namespace's allow-list; `close` undoes all of it. */
export class Network {
  readonly hostNs: string;
  readonly netNs: string;
  private readonly uplink: string;
  private readonly table: string;
  private readonly forwardWas: string;
  readonly mirror: string[];

  private constructor(readonly id: string, mirror: string[]) {
    this.hostNs = `msb-host-${id}`;
    this.netNs = `msb-net-${id}`;
    this.uplink = `msbup-${id}`;
    this.table = `mailstack_boot_${id}`;
    this.mirror = mirror;
    this.forwardWas = readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim();
  }

  /**
   * Removes what an earlier run that was killed left behind (its namespaces, uplink, nftables
   * table, loop devices): their addresses would shadow this run's. One boot test per machine.
   */
  static removeLeftovers(): void {
    for (const ns of run("ip", ["netns", "list"]).stdout.match(/^msb-(host|net)-[0-9a-f]+/gm) ?? []) {
      for (const pid of run("ip", ["netns", "pids", ns]).stdout.split("\n").filter(Boolean)) run("kill", ["-9", pid]);
      run("ip", ["netns", "delete", ns]);
      rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
    for (const link of run("ip", ["-o", "link", "show"]).stdout.match(/msbup-[0-9a-f]+/g) ?? []) run("ip", ["link", "delete", link]);
    for (const table of run("nft", ["list", "tables"]).stdout.match(/mailstack_boot_[0-9a-f]+/g) ?? []) run("nft", ["delete", "table", "inet", table]);
    for (const line of run("losetup", ["--list", "--noheadings", "--output", "NAME,BACK-FILE"]).stdout.split("\n")) {
      const [device, file] = line.trim().split(/\s+/);
      if (file?.startsWith("/var/tmp/mailstack-boot-")) run("losetup", ["-d", device]);
    }
  }

  /** Creates the namespaces; `publicIp` (the plan's Elastic IP) reaches the container. */
  static async create(id: string, publicIp: string): Promise<Network> {
    Network.removeLeftovers();
    const mirror = [...new Set((await lookup(MIRROR, { all: true, family: 4 })).map((a) => a.address))];
    const net = new Network(id, mirror);
    try {
      net.setUp(publicIp);
    } catch (error) {
      net.close();
      throw error;
    }
    return net;
  }

  private setUp(publicIp: string): void {
    const { hostNs, netNs, uplink } = this;
    runOk("ip", ["netns", "add", hostNs]);
    runOk("ip", ["netns", "add", netNs]);
    const inNet = (...args: string[]) => runOk("ip", ["-n", netNs, ...args]);
    inNet("link", "set", "lo", "up");
    for (const address of Object.values(STAND_INS)) inNet("addr", "add", `${address}/32`, "dev", "lo");
    // The instance's interface, named as on a Nitro instance.
    inNet("link", "add", "gw", "type", "veth", "peer", "name", "ens5", "netns", hostNs);
    inNet("addr", "add", `${GATEWAY_IP}/24`, "dev", "gw");
    inNet("link", "set", "gw", "up");
    runOk("ip", ["link", "add", uplink, "type", "veth", "peer", "name", "uplink", "netns", netNs]);
    runOk("ip", ["addr", "add", `${UPLINK_ROOT}/30`, "dev", uplink]);
    runOk("ip", ["link", "set", uplink, "up"]);
    inNet("addr", "add", `${UPLINK_NET}/30`, "dev", "uplink");
    inNet("link", "set", "dev", "uplink", "up");
    inNet("route", "add", "default", "via", UPLINK_ROOT);
    runOk("ip", ["-n", hostNs, "link", "set", "lo", "up"]);
    // Whatever runs in the internet namespace resolves through the stack's DNS, never the machine's.
    mkdirSync(`/etc/netns/${netNs}`, { recursive: true });
    writeFileSync(`/etc/netns/${netNs}/resolv.conf`, `nameserver ${STAND_INS.dns}\n`);
    runOk("ip", ["netns", "exec", netNs, "sysctl", "-q", "net.ipv4.ip_forward=1"]);
    // The Elastic IP, one-to-one to the private address, for traffic from outside and for
    // clients and stand-ins inside the internet namespace itself (pebble's HTTP-01 check).
    runOk("ip", ["netns", "exec", netNs, "nft", "-f", "-"], {
      input: [
        "table ip internet {",
        `  chain prerouting { type nat hook prerouting priority dstnat; ip daddr ${publicIp} dnat to ${CONTAINER_IP};`,
        // The host's resolver iterates from the root servers: whichever it asks, the stack's DNS
        // answers, so every lookup ends at once (the host's own names, or a fast failure
        // instead of timeouts that would hold postscreen's greeting back).
        `    iifname "gw" meta l4proto { udp, tcp } th dport 53 dnat to ${STAND_INS.dns}; }`,
        `  chain output { type nat hook output priority -100; ip daddr ${publicIp} dnat to ${CONTAINER_IP}; }`,
        `  chain postrouting { type nat hook postrouting priority srcnat; oifname "uplink" masquerade; }`,
        "}",
      ].join("\n"),
    });
    // The root namespace forwards the mirror's HTTP(S) and nothing else from the uplink.
    writeFileSync("/proc/sys/net/ipv4/ip_forward", "1");
    runOk("nft", ["-f", "-"], {
      input: [
        `table inet ${this.table} {`,
        `  chain forward { type filter hook forward priority filter; policy accept;`,
        `    iifname "${uplink}" ip daddr { ${this.mirror.join(", ")} } tcp dport { 80, 443 } accept`,
        `    iifname "${uplink}" drop`,
        "  }",
        `  chain postrouting { type nat hook postrouting priority srcnat; ip saddr ${UPLINK_NET} oifname != "${uplink}" masquerade; }`,
        "}",
      ].join("\n"),
    });
  }

  /** Runs a command inside the internet namespace (where the test's clients are). */
  execAsync(command: string, args: string[], input?: string): Promise<RunResult> {
    return runAsync("ip", ["netns", "exec", this.netNs, command, ...args], { input });
  }

  /**
   * The lines the container's /etc/hosts needs: the names the host really uses, at their
   * stand-ins. restic (minio-go) turns the repository's path-style URL into the bucket's
   * virtual-host name on S3's dual-stack endpoint.
   */
  hostsLines(region: string, bucket: string): string[] {
    return [
      `${STAND_INS.ssm} ssm.${region}.amazonaws.com`,
      `${STAND_INS.s3} s3.${region}.amazonaws.com ${bucket}.s3.${region}.amazonaws.com ${bucket}.s3.dualstack.${region}.amazonaws.com`,
      `${STAND_INS.acme} acme-v02.api.letsencrypt.org`,
      `${STAND_INS.logs} logs.${region}.amazonaws.com`,
      `${STAND_INS.monitoring} monitoring.${region}.amazonaws.com`,
      ...this.mirror.map((a) => `${a} ${MIRROR}`),
    ];
  }

  close(): void {
    run("nft", ["delete", "table", "inet", this.table]);
    run("ip", ["link", "delete", this.uplink]);
    run("ip", ["netns", "delete", this.netNs]);
    rmSync(`/etc/netns/${this.netNs}`, { recursive: true, force: true });
    run("ip", ["netns", "delete", this.hostNs]);
    writeFileSync("/proc/sys/net/ipv4/ip_forward", this.forwardWas);
  }
}

/** What a NoCloud seed holds: the plan's user data, unchanged, and EC2's instance identity. */
export interface Seed {
  userData: string;
  instanceId: string;
  hostname: string;
}

/**
 * One instance: a fresh copy of the image (its root volume) booted in the host namespace. A
 * reboot restarts the same copy; a replacement is a new Machine with a new copy.
 */
export class Machine {
  private nspawn?: ChildProcess;
  private exited?: Promise<number | null>;
  readonly log: string;
  readonly launchedAt: number[] = [];

  constructor(
    readonly name: string,
    readonly root: string,
    private readonly network: Network,
  ) {
    this.log = `${root}.console.log`;
  }

  /**
   * Unpacks the image, adds the seed and what stands in for EC2's environment (the names of
   * AWS's endpoints and the mirror in cloud-init's hosts template, the test CA in the trust
   * store: see docs/fidelity.md). Nothing of mailstack is put there: that comes from the seed.
   */
  static create(name: string, root: string, image: string, network: Network, seed: Seed, aws: { region: string; bucket: string }, caPem: string): Machine {
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    runOk("tar", ["-C", root, "-xf", image]);
    const nocloud = join(root, "var/lib/cloud/seed/nocloud");
    mkdirSync(nocloud, { recursive: true });
    writeFileSync(join(nocloud, "user-data"), seed.userData);
    writeFileSync(join(nocloud, "meta-data"), `instance-id: ${seed.instanceId}\nlocal-hostname: ${seed.hostname}\n`);
    writeFileSync(
      join(nocloud, "network-config"),
      [
        "version: 2",
        "ethernets:",
        "  ens5:",
        "    match: { name: ens5 }",
        `    addresses: [${CONTAINER_IP}/24]`,
        `    gateway4: ${GATEWAY_IP}`,
        `    nameservers: { addresses: [${STAND_INS.dns}] }`,
        "",
      ].join("\n"),
    );
    appendFileSync(join(root, "etc/cloud/templates/hosts.debian.tmpl"), `\n# mailstack boot test: stand-ins (docs/fidelity.md)\n${network.hostsLines(aws.region, aws.bucket).join("\n")}\n`);
    writeFileSync(join(root, "usr/local/share/ca-certificates/mailstack-boot-test.crt"), caPem);
    runOk("chroot", [root, "update-ca-certificates", "--fresh"], { stdio: ["ignore", "ignore", "pipe"] });
    // Until cloud-init's network configuration is applied, as the VPC resolver would be.
    writeFileSync(join(root, "etc/resolv.conf"), `nameserver ${STAND_INS.dns}\n`);
    // A first boot: no machine id yet, as in a fresh AMI.
    writeFileSync(join(root, "etc/machine-id"), "uninitialized\n");
    return new Machine(name, root, network);
  }

  /** Boots the container (a first boot or, on the same root, a reboot). */
  start(): void {
    this.launchedAt.push(Date.now());
    appendFileSync(this.log, `\n===== boot at ${new Date().toISOString()} =====\n`);
    const child = spawn(
      "systemd-nspawn",
      [
        "--quiet", "-D", this.root, "-b", `--machine=${this.name}`, "--register=no", "--keep-unit",
        "--console=read-only", "--resolv-conf=off", "--timezone=off", "--link-journal=no",
        // nspawn keeps it from a container that joins an existing network namespace; the
        // host's firewall and fail2ban need it, as they have it on EC2.
        "--capability=CAP_NET_ADMIN",
        `--network-namespace-path=/run/netns/${this.network.hostNs}`,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const append = (d: Buffer) => appendFileSync(this.log, d);
    child.stdout!.on("data", append);
    child.stderr!.on("data", append);
    this.nspawn = child;
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  }

  /** The container's init (PID 1 inside), for nsenter. */
  private leader(): number {
    if (!this.nspawn?.pid) throw new Error(`${this.name} is not running`);
    const children = run("pgrep", ["-P", String(this.nspawn.pid)]).stdout.split("\n").filter(Boolean);
    if (children.length !== 1) throw new Error(`${this.name}: expected one init process under nspawn, found ${children.length}`);
    return Number(children[0]);
  }

  /** Runs a command inside the container, as root, in all its namespaces. */
  exec(command: string, args: string[] = []): RunResult {
    return run("nsenter", ["-t", String(this.leader()), "-a", command, ...args]);
  }

  /** {@link exec}, without blocking the test's event loop (its clients keep going meanwhile). */
  execAsync(command: string, args: string[] = []): Promise<RunResult> {
    return runAsync("nsenter", ["-t", String(this.leader()), "-a", command, ...args]);
  }

  /**
   * `systemctl is-system-running` once boot has ended: running, degraded or maintenance.
   * Early in a boot it also prints `offline` (the manager does not answer on its socket yet)
   * or `unknown`; those are not verdicts, so they are waited through like `starting`.
   */
  async settled(seconds: number, everyMs = 2000): Promise<string> {
    let last = "";
    try {
      return await until(`${this.name} to finish booting`, seconds, () => {
        last = this.exec("systemctl", ["is-system-running"]).stdout.trim();
        return ["running", "degraded", "maintenance"].includes(last) ? last : undefined;
      }, everyMs);
    } catch (error) {
      throw new Error(`${String(error)} (last state: ${last || "none"})`, { cause: error });
    }
  }

  /** Attaches the data volume as EC2 shows it on a Nitro instance: an NVMe device named by volume id. */
  attachVolume(loopDevice: string, volumeId: string): void {
    const rdev = statSync(loopDevice).rdev;
    const [major, minor] = [Math.floor(rdev / 256) & 0xfff, (rdev & 0xff) | ((rdev >> 12) & 0xfff00)];
    const script = [
      "set -e",
      `mknod -m 0660 /dev/nvme1n1 b ${major} ${minor}`,
      "mkdir -p /dev/disk/by-id",
      `ln -sf ../../nvme1n1 /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volumeId.replace(/-/g, "")}`,
    ].join("\n");
    const r = this.exec("sh", ["-c", script]);
    if (r.status !== 0) throw new Error(`attaching ${loopDevice} to ${this.name}: ${r.stderr}`);
  }

  /** Powers the container off and waits for nspawn to end. */
  async stop(seconds = 300): Promise<void> {
    if (!this.running) return;
    this.exec("systemctl", ["poweroff"]);
    if (!(await within(this.exited!, seconds * 1000))) {
      this.nspawn.kill("SIGKILL");
      await this.exited;
      throw new Error(`${this.name} did not power off within ${seconds} s`);
    }
  }

  get running(): boolean {
    return this.nspawn !== undefined && this.nspawn.exitCode === null && this.nspawn.signalCode === null;
  }

  /** Ends the container at once, whatever its state (cleanup). */
  async kill(): Promise<void> {
    if (!this.running) return;
    // Killing the container's init ends every process in its PID namespace; killing nspawn
    // alone would leave them running.
    try {
      process.kill(this.leader(), "SIGKILL");
    } catch {
      // no init (yet, or any more)
    }
    if (!(await within(this.exited!, 15000))) {
      this.nspawn!.kill("SIGKILL");
      await this.exited;
    }
  }
}

/** The internet namespace's stand-ins (internet.mjs), driven over its stdin and stdout. */
export class Internet {
  readonly events: Record<string, any>[] = [];
  private waiters: { match: (e: Record<string, any>) => boolean; resolve: (e: Record<string, any>) => void }[] = [];
  private constructor(
    private readonly child: ChildProcess,
    eventsFile?: string,
  ) {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (eventsFile) appendFileSync(eventsFile, line + "\n");
      let event: Record<string, any>;
      try {
        event = JSON.parse(line);
      } catch {
        return;
      }
      this.events.push(event);
      for (const w of [...this.waiters]) {
        if (w.match(event)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(event);
        }
      }
    });
  }

  static async start(network: Network, configFile: string, logFile: string, eventsFile?: string): Promise<Internet> {
    const child = spawn("ip", ["netns", "exec", network.netNs, process.execPath, join(__dirname, "internet.mjs"), configFile], { stdio: ["pipe", "pipe", "pipe"] });
    child.stderr!.on("data", (d: Buffer) => appendFileSync(logFile, d));
    const internet = new Internet(child, eventsFile);
    const ready = internet.next((e) => e.event === "ready");
    const failed = new Promise<never>((_, reject) => child.once("exit", (code) => reject(new Error(`internet.mjs exited with ${code}; see ${logFile}`))));
    if (!(await within(Promise.race([ready, failed]), 60000))) throw new Error(`the stand-ins were not ready within 60 s; see ${logFile}`);
    return internet;
  }

  next(match: (e: Record<string, any>) => boolean): Promise<Record<string, any>> {
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  send(command: Record<string, unknown>): void {
    this.child.stdin!.write(JSON.stringify(command) + "\n");
  }

  requests(service: string): Record<string, any>[] {
    return this.events.filter((e) => e.event === "request" && e.service === service);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.send({ cmd: "stop" });
    if (!(await within(exited, 15000))) this.child.kill("SIGKILL");
  }
}
