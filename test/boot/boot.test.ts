/**
 * The host as it ships: the default stack's plan, booted by real cloud-init and systemd in a
 * Debian 12 container (systemd-nspawn), with stand-ins for AWS, Let's Encrypt and DNS in a
 * network namespace of its own (see machine.ts and internet.mjs; every way this differs from
 * EC2 is listed in docs/fidelity.md). The seed is the plan's user data, byte for byte; the SSM
 * parameters are the plan's; the stand-ins' answers are what AWS would answer.
 *
 * One instance's life, in order: a first boot where the data volume is attached and SSM
 * answers only minutes after boot; mail in (greylisted) and a DKIM-signed submission, TLS
 * from the ACME server, a backup; a reboot; a replacement instance on the same volume and
 * parameters; the greylisted sender's retry. Each test builds on the ones before it.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { dump, load } from "js-yaml";
import { dkimVerify } from "mailauth/lib/dkim/verify";
import { type DnsRecord, hashPassword, HOST_HEALTH_PARAMETER, HOST_METRICS, logGroupName, METRIC_DIMENSION, METRIC_NAMESPACE, PRODUCTION_ENV, txtValue, zoneFile } from "@mailstack/core";
import { findProject, readStackFile } from "../../packages/cli/src/project";
import { runProgram } from "../support/harness";
import { probeArgs } from "../support/socket-probe";
import { sleep } from "../support/stack";
import { requireRoot, requireTools, run, runOk } from "../support/tools";
import { Internet, Machine, Network, STAND_INS, until } from "./machine";

const ROOT = join(__dirname, "../..");
const CACHE = process.env.MAILSTACK_BOOT_CACHE ?? "/var/cache/mailstack-boot";
const ALICE = { address: "alice@example.com", password: "first boot, first mailbox, long passphrase" };
const BOB = { address: "bob@example.com", password: "first boot, second mailbox, long passphrase" };
/** An outside client's address, on the internet namespace's loopback. */
const CLIENT_IP = "198.51.100.20";
/** rspamd's greylisting delay (its default, 5 minutes), after which a retry passes. */
const GREYLIST_SECONDS = 300;

jest.setTimeout(20 * 60 * 1000);

interface Plan {
  userData: string;
  region: string;
  instanceId: string;
  publicIp: string;
  hostname: string;
  volumeId: string;
  bucket: string;
  /** The host bundle's object: its key and document. */
  bundle: { key: string; body: string };
  /** The runtime object (users, maps): its key and document. */
  runtime: { key: string; body: string };
  parameters: { Name: string; Type: string; Value: string }[];
  records: DnsRecord[];
}

/**
 * The default stack (Pulumi.example.yaml) as a user deploys it: its `secure:` placeholders
 * replaced by real secrets, as `pulumi config set --secret` would, and planned by the
 * reference program under the recording mock runtime, which runs the password-hashing
 * provider for real.
 */
async function planDefaultStack(): Promise<Plan> {
  const project = findProject(ROOT);
  const stack = readStackFile(join(ROOT, "Pulumi.example.yaml"), project);
  const values = { ...stack.values };
  const mailboxes = JSON.parse(values["mailstack:mailboxes"]) as Record<string, unknown>[];
  for (const m of mailboxes) {
    if (m.address === ALICE.address) m.password = ALICE.password;
    if (m.address === BOB.address) m.passwordHash = hashPassword(BOB.password, BOB.address, "/boot-test");
  }
  values["mailstack:mailboxes"] = JSON.stringify(mailboxes);
  const run = await runProgram(() => require("../../program"), { project: project.name, stack: "example", config: values, secretKeys: stack.secretKeys });
  const bundle = run.named("mail-host-bundle");
  const runtime = run.named("mail-parameters-runtime");
  const settings = hostSettings(bundle.inputs.content);
  return {
    userData: run.userData(),
    region: stack.region,
    instanceId: run.outputs.instanceId,
    publicIp: run.outputs.publicIp,
    hostname: run.outputs.hostname,
    volumeId: settings.MAILSTACK_DATA_VOLUME_ID,
    bucket: bucketOf(settings),
    bundle: { key: bundle.inputs.key, body: bundle.inputs.content },
    runtime: { key: runtime.inputs.key, body: runtime.inputs.content },
    parameters: run.ofType("aws:ssm/parameter:Parameter").map((p) => ({ Name: p.inputs.name, Type: p.inputs.type, Value: p.inputs.value })),
    records: run.outputs.dnsRecords as DnsRecord[],
  };
}

/**
 * What a `pulumi up` after `pulumi config set` of `changes` would publish for the host: the
 * plan of the default stack with them, by `mailstack plan` in a process of its own (the
 * reference program, once loaded, is not run a second time in this one). The host bundle holds
 * no secret, so the plan's stand-ins for the `secure:` values change nothing in it.
 */
function planChanged(dir: string, changes: Record<string, unknown>): Pick<Plan, "userData" | "bundle" | "volumeId" | "bucket"> {
  mkdirSync(dir, { recursive: true });
  const stack = load(readFileSync(join(ROOT, "Pulumi.example.yaml"), "utf8")) as { config: Record<string, unknown> };
  // Named like the default stack's file: the stack's name is in the parameter path.
  const file = join(dir, "Pulumi.example.yaml");
  writeFileSync(file, dump({ config: { ...stack.config, ...changes } }));
  runOk(process.execPath, [join(ROOT, "packages/cli/dist/main.js"), "plan", "--config", file, "--out", join(dir, "out")], { cwd: ROOT });
  const body = readFileSync(join(dir, "out", "host-bundle.json"), "utf8");
  const resources = JSON.parse(readFileSync(join(dir, "out", "resources.json"), "utf8")) as { name: string; inputs: Record<string, any> }[];
  const settings = hostSettings(body);
  return {
    userData: readFileSync(join(dir, "out", "user-data.yaml"), "utf8"),
    bundle: { key: resources.find((r) => r.name === "mail-host-bundle")!.inputs.key, body },
    volumeId: settings.MAILSTACK_DATA_VOLUME_ID,
    bucket: bucketOf(settings),
  };
}

/** The host's settings file, as a bundle document carries it. */
function hostSettings(bundle: string): Record<string, string> {
  return Object.fromEntries(
    (JSON.parse(bundle) as { files: { path: string; content: string }[] }).files
      .find((f) => f.path === "/etc/default/mailstack")!
      .content.split("\n")
      .filter((l) => /^[A-Z_0-9]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 2, -1)]),
  );
}

const bucketOf = (settings: Record<string, string>) => settings.MAILSTACK_BACKUP_REPOSITORY.match(/amazonaws\.com\/([^/]+)\//)![1];

/** The packages the user data installs, for the image's apt cache. */
const packagesOf = (userData: string): string[] => (load(userData) as { packages: string[] }).packages;

describe("the plan's user data, booted by cloud-init and systemd", () => {
  requireRoot("it creates network namespaces, loop devices and containers");
  requireTools("systemd-nspawn", "mmdebstrap", "pebble", "knotd", "nft", "ip", "losetup", "nsenter", "openssl", "mkfs.ext4");

  const id = randomBytes(2).toString("hex");
  const work = `/var/tmp/mailstack-boot-${id}`;
  let plan: Plan;
  let network: Network;
  let internet: Internet;
  let loop = "";
  let machine: Machine;
  let first: Machine;
  let image: string;
  let caPem: string;
  const figures: string[] = [];
  const inboundMessage = `From: Outside <postmaster@outside.example>\r\nTo: <${ALICE.address}>\r\nSubject: boot test inbound\r\nMessage-ID: <boot-inbound-${id}@outside.example>\r\nDate: ${new Date().toUTCString()}\r\n\r\nHello from the internet.\r\n`;
  let greylistedAt = 0;
  const keys: Record<string, string> = {};
  /** The plan after a day-2 change of host settings. */
  let changed: ReturnType<typeof planChanged>;
  /** main.cf as the changed bundle installed it. */
  let goodMainCf = "";

  const client = async <T>(fn: string, args: unknown): Promise<T> => {
    const r = await network.execAsync(process.execPath, [join(__dirname, "../support/netns-client.mjs")], JSON.stringify({ fn, args }));
    if (r.status !== 0) throw new Error(`client ${fn} failed (${r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };
  const smtp = (args: Record<string, unknown>) => client<{ banner: string; replies: { sent: string; reply: string }[] }>("smtp", { host: plan.publicIp, source: CLIENT_IP, ...args });
  const imap = (user: { address: string; password: string }, folder = "INBOX") =>
    client<{ results?: any[]; error?: string }>("imap", { host: plan.publicIp, port: 993, source: CLIENT_IP, user: user.address, pass: user.password, actions: [{ list: folder }] });
  const inside = (command: string, ...args: string[]) => machine.exec(command, args);
  /** The snapshot objects in the S3 stand-in's copy of the backup bucket. */
  /** The restic repository's config object in the S3 stand-in: its identity. */
  const repositoryConfig = () => join(work, "internet", "s3", plan.bucket, "restic", "config._S3rver_object");
  const snapshotsInBucket = () => readdirSync(join(work, "internet", "s3", plan.bucket, "restic", "snapshots")).filter((f) => f.endsWith("._S3rver_object"));
  const failedUnits = () => inside("systemctl", "--failed", "--no-legend", "--plain").stdout.trim();
  const mainPid = (unit: string) => inside("systemctl", "show", "-p", "MainPID", "--value", unit).stdout.trim();
  // systemd does not track Postfix's master (GuessMainPID=no): its own pid file names it.
  const postfixMaster = () => inside("cat", "/var/spool/postfix/pid/master.pid").stdout.trim();
  const sha = (text: string) => createHash("sha256").update(text).digest("hex");
  /** What `pulumi up` does with a new bundle: the object first, then the pointer naming it. */
  const publish = async (key: string, body: string, claimed = sha(body)) => {
    const stored = internet.next((e) => e.event === "s3-put-done" && e.key === key);
    internet.send({ cmd: "s3-put", key, body });
    await stored;
    const pointer = plan.parameters.find((p) => p.Name.endsWith("/host-bundle"))!;
    const value = JSON.stringify({ ...JSON.parse(pointer.Value), key, sha256: claimed });
    const put = internet.next((e) => e.event === "ssm-put-done");
    internet.send({ cmd: "ssm-put", parameters: [{ ...pointer, Value: value }] });
    await put;
  };
  /** The host's own report, as the operator reads it from SSM. */
  const status = async (): Promise<Record<string, any>> => {
    const name = plan.parameters.find((p) => p.Name.endsWith("/host-bundle"))!.Name.replace(/host-bundle$/, "status/host-bundle");
    const answer = internet.next((e) => e.event === "ssm-value" && e.name === name);
    internet.send({ cmd: "ssm-get", name });
    const { value } = await answer;
    return JSON.parse(value ?? "null");
  };
  const submit = (user: { address: string; password: string }, to: string, subject: string) => {
    const body = `From: <${user.address}>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nMessage-ID: <${randomBytes(8).toString("hex")}@example.com>\r\nDate: ${new Date().toUTCString()}\r\n\r\n${subject}\r\n`;
    const auth = Buffer.from(`\0${user.address}\0${user.password}`).toString("base64");
    return smtp({ port: 587, steps: ["EHLO client.example", { starttls: true }, "EHLO client.example", `AUTH PLAIN ${auth}`, `MAIL FROM:<${user.address}>`, `RCPT TO:<${to}>`, { data: body }, "QUIT"] });
  };

  beforeAll(async () => {
    mkdirSync(work, { recursive: true });
    plan = await planDefaultStack();
    image = runOk(join(__dirname, "rootfs.sh"), [CACHE, ...packagesOf(plan.userData)]).stdout.trim();

    // The test CA, trusted by the instance as Amazon's and Let's Encrypt's CAs are on EC2.
    const tls = join(work, "tls");
    mkdirSync(tls);
    const names = [`ssm.${plan.region}.amazonaws.com`, `s3.${plan.region}.amazonaws.com`, `*.s3.${plan.region}.amazonaws.com`, `*.s3.dualstack.${plan.region}.amazonaws.com`, "acme-v02.api.letsencrypt.org", `logs.${plan.region}.amazonaws.com`, `monitoring.${plan.region}.amazonaws.com`];
    runOk("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=mailstack boot test CA", "-keyout", join(tls, "ca-key.pem"), "-out", join(tls, "ca.pem")]);
    runOk("openssl", ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", `/CN=${names[0]}`, "-keyout", join(tls, "server-key.pem"), "-out", join(tls, "server.csr")]);
    writeFileSync(join(tls, "ext.cnf"), `subjectAltName=${[...names.map((n) => `DNS:${n}`), "IP:127.0.0.1", "DNS:localhost"].join(",")}\n`);
    runOk("openssl", ["x509", "-req", "-in", join(tls, "server.csr"), "-CA", join(tls, "ca.pem"), "-CAkey", join(tls, "ca-key.pem"), "-CAcreateserial", "-days", "2", "-extfile", join(tls, "ext.cnf"), "-out", join(tls, "server.pem")]);

    network = await Network.create(id, plan.publicIp);
    runOk("ip", ["-n", network.netNs, "addr", "add", `${CLIENT_IP}/32`, "dev", "lo"]);

    // The data volume: a blank disk, as EBS creates it.
    runOk("truncate", ["-s", "2G", join(work, "data-volume.img")]);
    loop = runOk("losetup", ["--find", "--show", join(work, "data-volume.img")]).stdout.trim();

    const zones = Object.fromEntries([...new Set(plan.records.map((r) => r.zone))].map((z) => [z, zoneFile(z, plan.records)]));
    const config = {
      dir: join(work, "internet"),
      tls: { cert: join(tls, "server.pem"), key: join(tls, "server-key.pem") },
      imds: {
        address: STAND_INS.imds,
        instanceId: plan.instanceId,
        region: plan.region,
        availabilityZone: `${plan.region}a`,
        role: "mail-host",
        credentials: { AccessKeyId: "S3RVER", SecretAccessKey: "S3RVER", Token: randomBytes(24).toString("base64") },
      },
      ssm: { address: STAND_INS.ssm, up: false, parameters: plan.parameters },
      s3: { address: STAND_INS.s3, bucket: plan.bucket, objects: [plan.bundle, plan.runtime].map((o) => ({ key: o.key, body: o.body })) },
      acme: { address: STAND_INS.acme, dnsServer: `${STAND_INS.resolver}:53`, httpPort: 80 },
      dns: { address: STAND_INS.dns, resolver: STAND_INS.resolver, zones },
      // The log group the stack creates; the host creates its stream.
      logs: { address: STAND_INS.logs, groups: [logGroupName(ssmPath(plan))] },
      monitoring: { address: STAND_INS.monitoring },
    };
    mkdirSync(config.dir);
    writeFileSync(join(work, "internet.json"), JSON.stringify(config, null, 2));
    internet = await Internet.start(network, join(work, "internet.json"), join(work, "internet.log"), join(work, "internet-events.jsonl"));

    caPem = readFileSync(join(tls, "ca.pem"), "utf8");
    first = Machine.create(`msb-${id}-1`, join(work, "instance-1"), image, network, { userData: plan.userData, instanceId: plan.instanceId, hostname: "mail" }, { region: plan.region, bucket: plan.bucket }, caPem);
    machine = first;
  });

  afterAll(async () => {
    // Each step on its own: one that fails must not leave the others' namespaces, links and
    // containers behind.
    const step = async (what: string, work: () => unknown) => {
      try {
        await work();
      } catch (error) {
        console.error(`boot test cleanup: ${what}: ${String(error)}`);
      }
    };
    for (const m of new Set([first, machine])) {
      if (!m?.running) continue;
      await step(`${m.name}'s journal`, () => writeFileSync(`${m.root}.journal.log`, m.exec("journalctl", ["--no-pager", "-b", "-o", "short-monotonic"]).stdout));
      await step(`stopping ${m.name}`, () => m.kill());
    }
    await step("the stand-ins", () => internet?.stop());
    if (loop) await step("the loop device", () => run("losetup", ["-d", loop]));
    await step("the network", () => network?.close());
    if (figures.length > 0) console.log(`boot test figures:\n${figures.join("\n")}`);
    if (process.env.MAILSTACK_BOOT_KEEP === "1") {
      console.log(`boot test kept ${work}`);
    } else {
      await step("the work directory", () => rmSync(work, { recursive: true, force: true }));
    }
  });

  test("first boot: the volume arrives and SSM answers minutes later, and the host finishes its setup by itself", async () => {
    machine.start();
    const launched = Date.now();
    // cloud-init finishes (its packages, files and runcmd) whatever the host still waits for.
    const status = await until("cloud-init to finish", 600, () => {
      const s = inside("cloud-init", "status").stdout;
      return /status: (done|error)/.test(s) ? s : undefined;
    }, 5000);
    expect(status).toMatch(/status: done/);
    figures.push(`first boot: cloud-init done ${((Date.now() - launched) / 1000).toFixed(0)} s after launch`);
    // Nothing listens for mail while the volume is missing: no message can land on the root volume.
    const early = await smtp({ port: 25, steps: ["QUIT"], timeoutMs: 5000 });
    expect(early.banner).toMatch(/^\(error/);

    await sleep(60_000);
    machine.attachVolume(loop, plan.volumeId);
    // The setup fails on SSM (it cannot fetch the host bundle), and systemd runs it again.
    await until("the setup to fail on SSM and be retried", 300, () => {
      const show = inside("systemctl", "show", "-p", "NRestarts", "mailstack-bootstrap.service").stdout;
      return Number(show.match(/NRestarts=(\d+)/)?.[1]) >= 2;
    }, 5000);
    expect(inside("systemctl", "is-active", "postfix.service").stdout.trim()).not.toBe("active");
    expect(inside("journalctl", "--no-pager", "-o", "cat", "-u", "mailstack-bootstrap.service").stdout).toMatch(/mailstack-first-boot: cannot fetch the host bundle: .*; will retry/);
    internet.send({ cmd: "ssm-up" });

    const state = await machine.settled(600, 5000);
    await until("port 25 to greet", 300, async () => (await smtp({ port: 25, steps: ["QUIT"], timeoutMs: 10000 })).banner.startsWith("220"));
    figures.push(`first boot (volume after 60 s, SSM after ~2 min): ready ${((Date.now() - launched) / 1000).toFixed(0)} s after launch`);
    expect({ state, failed: failedUnits() }).toEqual({ state: "running", failed: "" });
    // The package install started no daemon (the policy-rc.d refused), and nothing of it is left.
    expect(inside("cat", "/var/log/cloud-init-output.log").stdout).toMatch(/policy-rc\.d returned 101, not running 'start postfix\.service'/);
    expect(inside("journalctl", "--no-pager", "-o", "cat", "-u", "postfix@-.service").stdout).not.toMatch(/fatal/);
    expect(inside("test", "-e", "/usr/sbin/policy-rc.d").status).not.toBe(0);
    expect(inside("systemctl", "show", "-p", "ActiveState,SubState,Result", "mailstack-bootstrap.service").stdout.trim().split("\n").sort()).toEqual(["ActiveState=active", "Result=success", "SubState=exited"]);
    // Every metadata request but the token's own carried an IMDSv2 token.
    expect(internet.requests("imds").filter((r) => !r.token && r.path !== "/latest/api/token")).toEqual([]);
    // The keys the stack gave this host, to find again on its replacement.
    keys.dkim = fingerprint(inside("sh", "-c", "cat /etc/mailstack/dkim/*.key").stdout);
    keys.tls = fingerprint(inside("openssl", "pkey", "-in", "/etc/mailstack/tls/privkey.pem", "-pubout").stdout);
    expect(keys).toEqual({ dkim: expect.stringMatching(/^[0-9a-f]{64}$/), tls: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });

  test("mail in on 25 passes postscreen and meets rspamd, which greylists a sender it cannot vouch for", async () => {
    // postscreen tests a new client first and asks it to come back.
    const probe = await smtp({ port: 25, steps: ["EHLO mx.outside.example", "MAIL FROM:<>", `RCPT TO:<${ALICE.address}>`, "QUIT"] });
    expect(probe.banner).toMatch(/^220/);
    const sent = await until("postscreen to let the client through", 60, async () => {
      const s = await smtp({ port: 25, steps: ["EHLO mx.outside.example", "MAIL FROM:<>", `RCPT TO:<${ALICE.address}>`, { data: inboundMessage }, "QUIT"] });
      return s.replies[2]?.reply.startsWith("250") ? s : undefined;
    });
    // No reverse DNS for the client in the test's network (docs/fidelity.md): rspamd scores the
    // message above its greylisting threshold, as it would such a sender on the internet.
    expect(lastReply(sent.replies[3].reply)).toMatch(/^451 4\.7\.1 /);
    greylistedAt = Date.now();
  });

  test("mail submitted on 587 is DKIM-signed with the published key", async () => {
    const body = `From: <${ALICE.address}>\r\nTo: <${BOB.address}>\r\nSubject: boot test submission\r\nMessage-ID: <boot-submission-${id}@example.com>\r\nDate: ${new Date().toUTCString()}\r\n\r\nSigned on its way out.\r\n`;
    const auth = Buffer.from(`\0${ALICE.address}\0${ALICE.password}`).toString("base64");
    const s = await smtp({ port: 587, steps: ["EHLO client.example", { starttls: true }, "EHLO client.example", `AUTH PLAIN ${auth}`, `MAIL FROM:<${ALICE.address}>`, `RCPT TO:<${BOB.address}>`, { data: body }, "QUIT"] });
    expect(s.replies.map((r) => lastReply(r.reply).slice(0, 3))).toEqual(["250", "220", "250", "235", "250", "250", "250", "221"]);
    const message = await until("the message in bob's INBOX", 120, async () => {
      const r = await imap(BOB);
      return r.results?.[0]?.find((m: any) => m.source.includes("boot test submission"))?.source as string | undefined;
    });
    const txt = (name: string) => plan.records.filter((r) => r.type === "TXT" && r.name === name.replace(/\.$/, "")).map((r) => [txtValue(r.content)]);
    const resolver = async (name: string, type: string) => {
      const found = type === "TXT" ? txt(name) : [];
      if (found.length === 0) throw Object.assign(new Error(`no ${type} for ${name}`), { code: "ENOTFOUND" });
      return found;
    };
    const verdict = await dkimVerify(Buffer.from(message.replace(/\r?\n/g, "\r\n")), { resolver });
    expect(verdict.results.map((r: any) => ({ domain: r.signingDomain, result: r.status.result }))).toContainEqual({ domain: "example.com", result: "pass" });
  });

  test("under systemd, rspamd's and Redis's sockets open only for their clients, and neither has a TCP port", () => {
    const paths = PRODUCTION_ENV.paths;
    const probe = (user: string, kind: "unix" | "tcp", target: string) => inside("setpriv", ...probeArgs(user, user === "nobody" ? "nogroup" : user, kind, target)).stdout.trim();
    for (const user of ["nobody", "www-data", "vmail"]) {
      expect([user, ...[paths.rspamdMilterSocket, paths.rspamdControllerSocket, paths.redisSocket].map((s) => probe(user, "unix", s))]).toEqual([user, "EACCES", "EACCES", "EACCES"]);
      expect([user, ...[11334, 11332, 6379].map((port) => probe(user, "tcp", `127.0.0.1:${port}`))]).toEqual([user, "ECONNREFUSED", "ECONNREFUSED", "ECONNREFUSED"]);
    }
    // The socket directories the drop-ins make, and the clients they let in.
    expect(probe("postfix", "unix", paths.rspamdMilterSocket)).toBe("connected");
    expect(probe("_rspamd", "unix", paths.rspamdControllerSocket)).toBe("connected");
    expect(probe("_rspamd", "unix", paths.redisSocket)).toBe("connected");
    expect(inside("redis-cli", "-s", paths.redisSocket, "ping").stdout.trim()).toBe("PONG");
  });

  test("993 serves the ACME server's certificate for the host name", async () => {
    const roots = internet.next((e) => e.event === "acme-roots");
    internet.send({ cmd: "acme-roots" });
    const { root, intermediate } = await roots;
    writeFileSync(join(work, "acme-roots.pem"), `${root}\n${intermediate}\n`);
    const chain = await until("the ACME certificate on 993", 300, async () => {
      const r = await network.execAsync("openssl", ["s_client", "-connect", `${plan.publicIp}:993`, "-servername", plan.hostname, "-verify_hostname", plan.hostname, "-CAfile", join(work, "acme-roots.pem"), "-verify_return_error", "-brief"], "");
      return r.status === 0 ? r.stderr : undefined;
    }, 10000);
    expect(chain).toMatch(/Verification: OK/);
    expect(internet.requests("acme").some((r) => r.path.includes("finalize") || r.path.includes("order"))).toBe(true);
  });

  test("the backup unit lands a restic snapshot in S3; nftables and fail2ban are active", async () => {
    const backup = inside("systemctl", "start", "mailstack-backup.service");
    expect({ status: backup.status, stderr: backup.stderr }).toEqual({ status: 0, stderr: "" });
    expect(inside("/usr/local/sbin/mailstack-restore", "--list").stdout).toMatch(/^1 snapshots$/m);
    // In the bucket the plan created, under the repository's prefix.
    expect(snapshotsInBucket()).toHaveLength(1);
    keys.repository = fingerprint(readFileSync(repositoryConfig(), "utf8"));
    expect(inside("nft", "list", "table", "inet", "mailstack").stdout).toMatch(/tcp dport 25 /);
    expect(inside("fail2ban-client", "ping").stdout).toMatch(/pong/);
  });

  test("the journal reaches CloudWatch Logs, and the metrics CloudWatch and SSM", async () => {
    // Shipped as it is written: Postfix's line of the submission above, and rspamd's, whose
    // log the host sends to the journal.
    const shipped = () => internet.events.filter((e) => e.event === "logs-put" && e.group === logGroupName(ssmPath(plan)) && e.stream === plan.instanceId).flatMap((e) => e.messages as string[]);
    await until("the submission's lines in CloudWatch Logs", 120, () => shipped().some((m) => /^postfix\/cleanup\[\d+\]: \w+: message-id=<boot-submission-/.test(m)));
    expect(shipped().some((m) => /^rspamd\[\d+\]: <\w+>; proxy; rspamd_task_write_log: /.test(m))).toBe(true);
    expect(internet.events.filter((e) => e.event === "logs-refused")).toEqual([]);
    // The timer's run, now rather than at the next five minutes.
    const run = inside("systemctl", "start", "mailstack-metrics.service");
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: "" });
    // 0 itself, not the 75 (CloudWatch unreachable) that the unit also counts as success.
    expect(inside("systemctl", "show", "-p", "ExecMainStatus", "--value", "mailstack-metrics.service").stdout.trim()).toBe("0");
    // The stand-in's events come through a pipe: they may arrive after the unit has ended.
    const put = await until("the metrics in CloudWatch", 30, () => internet.events.filter((e) => e.event === "metrics-put").at(-1), 500);
    expect(put.namespace).toBe(METRIC_NAMESPACE);
    expect(put.data.map((d: any) => d.name).sort()).toEqual(Object.values(HOST_METRICS).map((m) => m.name).sort());
    for (const d of put.data) expect(d.dimensions).toEqual({ [METRIC_DIMENSION]: plan.hostname });
    const name = `${ssmPath(plan)}/${HOST_HEALTH_PARAMETER}`;
    const answer = internet.next((e) => e.event === "ssm-value" && e.name === name);
    internet.send({ cmd: "ssm-get", name });
    const health = JSON.parse((await answer).value);
    // Just after the backup above; the ACME certificate (pebble's, valid for years or days) in force.
    expect(health).toMatchObject({ host: plan.hostname, bundleApplied: 1, queueDeferred: expect.any(Number), queueActive: expect.any(Number) });
    expect(health.hoursSinceBackup).toBeLessThan(1);
    expect(health.certificateDaysLeft).toBeGreaterThan(1);
    // ext4 counts none of its own metadata as used: a fresh 2 GiB volume with a few messages is at 0.0 %.
    expect(health.dataVolumeUsed).toBeGreaterThanOrEqual(0);
    expect(health.dataVolumeUsed).toBeLessThan(5);
    figures.push(`log shipping: ${shipped().length} journal lines in CloudWatch Logs by the end of the first boot's tests`);
  });

  test("a changed host file goes live on the running host: no replacement, only its daemons reloaded, no message lost", async () => {
    // `pulumi config set` of two host settings, and the plan a `pulumi up` would deploy.
    // The same plan without the changes publishes the very bundle the host runs.
    expect(planChanged(join(work, "unchanged"), {}).bundle).toEqual(plan.bundle);
    changed = planChanged(join(work, "changed"), { "mailstack:messageSizeLimitMiB": 30, "mailstack:backupSchedule": "*-*-* 04:15:00" });
    // The instance stays: same user data, same volume, same bucket; only the bundle is new.
    expect({ userData: changed.userData === plan.userData, volume: changed.volumeId, bucket: changed.bucket }).toEqual({ userData: true, volume: plan.volumeId, bucket: plan.bucket });
    expect(changed.bundle.key).not.toBe(plan.bundle.key);
    const before = { postfix: postfixMaster(), dovecot: mainPid("dovecot.service"), nginx: mainPid("nginx.service") };
    for (const pid of Object.values(before)) expect(Number(pid)).toBeGreaterThan(1);
    expect(inside("postconf", "-h", "message_size_limit").stdout.trim()).toBe(String(50 * 1024 * 1024));

    // Submissions keep coming while the host switches.
    let switching = true;
    const sent: string[] = [];
    const sender = (async () => {
      for (let n = 0; switching || n < 3; n++) {
        const subject = `during the switch ${id}-${n}`;
        const s = await submit(ALICE, BOB.address, subject);
        if (lastReply(s.replies[6]?.reply ?? "").startsWith("250")) sent.push(subject);
        else await sleep(1000);
      }
    })();
    await publish(changed.bundle.key, changed.bundle.body);
    const applied = await machine.execAsync("systemctl", ["start", "mailstack-sync.service"]);
    switching = false;
    await sender;
    expect({ status: applied.status, stderr: applied.stderr }).toEqual({ status: 0, stderr: "" });

    expect(inside("postconf", "-h", "message_size_limit").stdout.trim()).toBe(String(30 * 1024 * 1024));
    goodMainCf = inside("cat", "/etc/postfix/main.cf").stdout;
    expect(inside("systemctl", "show", "-p", "TimersCalendar", "mailstack-backup.timer").stdout).toMatch(/OnCalendar=\*-\*-\* 04:15:00/);
    // Postfix reloaded in place (same master process); Dovecot and nginx, whose files did not change, untouched.
    expect({ postfix: postfixMaster(), dovecot: mainPid("dovecot.service"), nginx: mainPid("nginx.service") }).toEqual(before);
    const log = inside("journalctl", "--no-pager", "-o", "cat", "-u", "mailstack-sync.service").stdout;
    expect(log).toMatch(/^mailstack-sync: reload-or-restart postfix@-\.service$/m);
    expect(log).toMatch(/^mailstack-sync: restart mailstack-backup\.timer$/m);
    expect(log).not.toMatch(/^mailstack-sync: (reload|restart)\S* (?!postfix@-\.service|mailstack-backup\.timer)/m);
    expect(await status()).toMatchObject({ running: sha(changed.bundle.body), attempted: sha(changed.bundle.body), result: "applied", reason: null });

    expect(sent.length).toBeGreaterThanOrEqual(3);
    await until("every message sent during the switch in bob's INBOX", 300, async () => {
      const subjects = ((await imap(BOB)).results?.[0] ?? []).map((m: any) => String(m.source));
      return sent.every((subject) => subjects.some((source: string) => source.includes(subject)));
    }, 5000);
    figures.push(`day-2 change: ${sent.length} submissions accepted and delivered during the switch`);
  });

  test("a bundle that a daemon's checker rejects is refused; the running configuration keeps serving, and the report says why", async () => {
    const good = goodMainCf;
    const bundle = JSON.parse(changed.bundle.body) as { files: { path: string; content: string }[] };
    for (const f of bundle.files) {
      if (f.path === "/etc/dovecot/dovecot.conf") f.content += "this_is_not_a_dovecot_setting = yes\n";
      if (f.path === "/etc/postfix/main.cf") f.content = f.content.replace(/^message_size_limit = .*$/m, "message_size_limit = 1048576");
    }
    const body = JSON.stringify(bundle);
    await publish(changed.bundle.key.replace(/[0-9a-f]{64}\.json$/, `${sha(body)}.json`), body);
    const refused = inside("systemctl", "start", "mailstack-sync.service");
    expect(refused.status).not.toBe(0);
    const report = await status();
    expect(report).toMatchObject({ running: sha(changed.bundle.body), attempted: sha(body), result: "refused" });
    expect(report.reason).toMatch(/dovecot.*this_is_not_a_dovecot_setting/);
    // Nothing of it was installed, not even the file that passed its own check.
    expect(inside("cat", "/etc/postfix/main.cf").stdout).toBe(good);
    // The checkers' overlay went with their mount namespace.
    expect(inside("findmnt", "-n", "--source", "mailstack-check").stdout.trim()).toBe("");
    expect((await imap(ALICE)).error).toBeUndefined();
    // The next run leaves the refused bundle alone instead of failing again.
    expect(inside("systemctl", "start", "mailstack-sync.service").status).toBe(0);
  });

  test("a bundle that passes its checker but whose daemon does not come back is rolled back, and the daemon runs again", async () => {
    const bundle = JSON.parse(changed.bundle.body) as { files: { path: string; content: string }[] };
    // A listener on the port nginx holds: `postfix check` cannot know, and the master, told to
    // reload, dies on the bind.
    for (const f of bundle.files) if (f.path === "/etc/postfix/master.cf") f.content += "127.0.0.1:443 inet n - n - - smtpd\n";
    const body = JSON.stringify(bundle);
    const masterCf = inside("cat", "/etc/postfix/master.cf").stdout;
    await publish(changed.bundle.key.replace(/[0-9a-f]{64}\.json$/, `${sha(body)}.json`), body);
    expect(inside("systemctl", "start", "mailstack-sync.service").status).not.toBe(0);
    const report = await status();
    expect(report).toMatchObject({ running: sha(changed.bundle.body), attempted: sha(body), result: "rolled-back" });
    expect(report.reason).toMatch(/^rolled back: postfix@-\.service not active/);
    expect(inside("journalctl", "--no-pager", "-o", "cat", "-u", "postfix@-.service", "--since", "-2min").stdout).toMatch(/fatal: bind 127\.0\.0\.1 port 443/);
    // The previous master.cf, and Postfix running on it: mail is accepted again.
    expect(inside("cat", "/etc/postfix/master.cf").stdout).toBe(masterCf);
    expect(inside("systemctl", "is-active", "postfix@-.service").stdout.trim()).toBe("active");
    const after = await submit(ALICE, BOB.address, `after the rollback ${id}`);
    expect(lastReply(after.replies[6]?.reply ?? "")).toMatch(/^250 /);
    inside("systemctl", "reset-failed", "mailstack-sync.service", "postfix@-.service");
    // Both failed syncs (this one and the refusal before it) are counted under the tag
    // monitoring watches; the postmaster (alice) is mailed once a day per unit.
    expect(inside("journalctl", "--no-pager", "-o", "cat", "-t", "mailstack-failure").stdout.match(/^mailstack-sync\.service failed on mail\.example\.com/gm)).toHaveLength(2);
    const alerts = await until("the postmaster's alert", 60, async () => {
      const found = (await imap(ALICE)).results?.[0]?.filter((m: any) => m.source.includes("Subject: mailstack-sync.service failed on mail.example.com"));
      return found?.length ? found : undefined;
    });
    expect(alerts).toHaveLength(1);
  });

  test("a bundle whose content does not match its hash is never installed", async () => {
    const good = goodMainCf;
    const bundle = JSON.parse(changed.bundle.body) as { files: { path: string; content: string }[] };
    for (const f of bundle.files) if (f.path === "/etc/postfix/main.cf") f.content = f.content.replace(/^message_size_limit = .*$/m, "message_size_limit = 2097152");
    // The pointer names the good bundle's hash; the object under its key holds something else.
    const claimed = createHash("sha256").update(`not ${changed.bundle.body}`).digest("hex");
    await publish(changed.bundle.key.replace(/[0-9a-f]{64}\.json$/, `${claimed}.json`), JSON.stringify(bundle), claimed);
    expect(inside("systemctl", "start", "mailstack-sync.service").status).not.toBe(0);
    const report = await status();
    expect(report).toMatchObject({ running: sha(changed.bundle.body), attempted: claimed, result: "refused" });
    expect(report.reason).toMatch(/hash/);
    expect(inside("cat", "/etc/postfix/main.cf").stdout).toBe(good);
    expect(inside("ls", "/var/lib/mailstack/host-bundles").stdout).not.toContain(claimed);
    inside("systemctl", "reset-failed", "mailstack-sync.service");
  });

  test("a reboot comes back to the same state: nothing lost, nothing set up twice", async () => {
    await machine.stop();
    machine.start();
    const launched = Date.now();
    // A new /dev: the volume shows up again, as udev would show it at an EC2 reboot.
    await until("the container's init", 60, () => machine.exec("true").status === 0, 200);
    machine.attachVolume(loop, plan.volumeId);
    const state = await machine.settled(300);
    await until("port 25 to greet", 300, async () => (await smtp({ port: 25, steps: ["QUIT"], timeoutMs: 10000 })).banner.startsWith("220"));
    figures.push(`reboot: ready ${((Date.now() - launched) / 1000).toFixed(0)} s after launch`);
    expect({ state, failed: failedUnits() }).toEqual({ state: "running", failed: "" });
    const inbox = await imap(BOB);
    expect(inbox.results?.[0]?.some((m: any) => m.source.includes("boot test submission"))).toBe(true);
    // The volume is mounted by its unit (no fstab line), and the daemons' data is on it.
    expect(inside("systemctl", "show", "-p", "ActiveState,Result", "mailstack-data-volume.service").stdout.trim().split("\n").sort()).toEqual(["ActiveState=active", "Result=success"]);
    expect(inside("findmnt", "-n", "-o", "SOURCE", "--mountpoint", "/var/vmail").stdout.trim()).toBe("/dev/nvme1n1[/vmail]");
    expect(inside("journalctl", "-b", "--no-pager", "-o", "cat", "-u", "mailstack-data-volume.service").stdout).toMatch(/holds data; mounting it as it is/);
    expect(inside("cat", "/etc/fstab").stdout).not.toMatch(/mailstack|vmail/);
    // The first-boot setup did not run again.
    expect(inside("journalctl", "-b", "--no-pager", "-u", "mailstack-bootstrap.service", "-o", "cat").stdout).not.toMatch(/mailstack-bootstrap: /);
    // The last good bundle, not the refused ones the pointer named since.
    expect(inside("postconf", "-h", "message_size_limit").stdout.trim()).toBe(String(30 * 1024 * 1024));
    expect(inside("cat", "/etc/postfix/main.cf").stdout).toBe(goodMainCf);
    expect(JSON.parse(inside("cat", "/var/lib/mailstack/bundle-state.json").stdout).current).toBe(sha(changed.bundle.body));
  });

  test("a replacement instance on the same volume and parameters keeps every message, both keys and the backup repository", async () => {
    await machine.stop();
    run("sync", []);
    // The stack's bundle again, as the next `pulumi up` publishes it after the tampering above.
    await publish(changed.bundle.key, changed.bundle.body);
    machine = Machine.create(`msb-${id}-2`, join(work, "instance-2"), image, network, { userData: plan.userData, instanceId: `${plan.instanceId.slice(0, -1)}f`, hostname: "mail" }, { region: plan.region, bucket: plan.bucket }, caPem);
    machine.start();
    const launched = Date.now();
    await until("the container's init", 60, () => machine.exec("true").status === 0, 200);
    machine.attachVolume(loop, plan.volumeId);
    await until("port 25 to greet", 900, async () => (await smtp({ port: 25, steps: ["QUIT"], timeoutMs: 10000 })).banner.startsWith("220"), 5000);
    await until("an IMAPS login", 300, async () => !(await imap(ALICE)).error);
    figures.push(`boot to ready (first 220 on 25 and an IMAPS login, volume and SSM there from the start): ${((Date.now() - launched) / 1000).toFixed(0)} s`);
    const state = await machine.settled(300);
    expect({ state, failed: failedUnits() }).toEqual({ state: "running", failed: "" });
    expect((await imap(BOB)).results?.[0]?.some((m: any) => m.source.includes("boot test submission"))).toBe(true);
    // The first boot installed the bundle the pointer names: the day-2 change included.
    expect(inside("postconf", "-h", "message_size_limit").stdout.trim()).toBe(String(30 * 1024 * 1024));
    expect(fingerprint(inside("sh", "-c", "cat /etc/mailstack/dkim/*.key").stdout)).toBe(keys.dkim);
    expect(fingerprint(inside("openssl", "pkey", "-in", "/etc/mailstack/tls/privkey.pem", "-pubout").stdout)).toBe(keys.tls);
    // Backups go on in the same repository: no new one, and restic built on the last
    // instance's snapshot (same host name and paths) rather than starting afresh. The keep
    // policy (--keep-daily) then forgets that one: both are of the same day.
    expect(inside("systemctl", "start", "mailstack-backup.service").status).toBe(0);
    expect(inside("journalctl", "--no-pager", "-o", "cat", "-u", "mailstack-backup.service").stdout).not.toMatch(/created restic repository/);
    const status = JSON.parse(inside("cat", "/var/lib/mailstack/backup-status.json").stdout);
    expect(status).toMatchObject({ ok: true, last_success: { files_unmodified: expect.any(Number) } });
    expect(status.last_success.files_unmodified).toBeGreaterThan(0);
    expect(fingerprint(readFileSync(repositoryConfig(), "utf8"))).toBe(keys.repository);
    expect(snapshotsInBucket().some((f) => f.startsWith(status.last_success.snapshot_id))).toBe(true);
  });

  test("the greylisted sender's retry, on the replacement, is accepted and read over IMAPS with the configured password", async () => {
    // rspamd's greylisting record is in redis, on the data volume: it outlived the reboot and
    // the replacement.
    await sleep(Math.max(0, greylistedAt + GREYLIST_SECONDS * 1000 - Date.now()));
    const sent = await until("the retry to be accepted", 120, async () => {
      const s = await smtp({ port: 25, steps: ["EHLO mx.outside.example", "MAIL FROM:<>", `RCPT TO:<${ALICE.address}>`, { data: inboundMessage }, "QUIT"] });
      return s.replies[2]?.reply.startsWith("250") && lastReply(s.replies[3].reply).startsWith("250") ? s : undefined;
    }, 10000);
    expect(lastReply(sent.replies[3].reply)).toMatch(/^250 /);
    const inbox = await until("the message in alice's INBOX", 120, async () => {
      const r = await imap(ALICE);
      return r.results?.[0]?.some((m: any) => m.source.includes("boot test inbound")) ? r.results[0] : undefined;
    });
    // Once: the first attempt was greylisted, not accepted. (The INBOX also holds the sync's alert.)
    expect(inbox.filter((m: any) => m.source.includes("boot test inbound"))).toHaveLength(1);
  });
});

/** The stack's SSM path: the bundle pointer's, less its name. */
const ssmPath = (plan: Plan) => plan.parameters.find((p) => p.Name.endsWith("/host-bundle"))!.Name.replace(/\/host-bundle$/, "");

/** The last line of a reply (DATA's holds the 354 and the final answer). */
const lastReply = (reply: string) => reply.trim().split("\n").pop()!.trim();

const fingerprint = (text: string) => (text.trim() ? createHash("sha256").update(text).digest("hex") : "");
