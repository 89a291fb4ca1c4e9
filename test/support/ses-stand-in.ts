/**
 * Amazon SES's SMTP endpoint for a test stack: ses-smtp.mjs, run on port 587 of a host of its own
 * ("the internet", a network namespace linked to the stack's by a veth pair), whose address the
 * stack's DNS gives for email-smtp.<region>.amazonaws.com (StackOptions.extraRecords).
 *
 * A namespace of its own because the stack's Postfix listens on 587 on every address of its
 * namespace (inet_interfaces = all), as on the host: the relay's port cannot be bound there.
 *
 * Certificates come from a CA made here with openssl, for the endpoint's name; also one of the
 * same CA for another name, and one for the right name that no trusted CA signed. The stack
 * must trust the CA through `caFile` (see the test for why and how).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface, type Interface } from "node:readline";
import { sesSmtpEndpoint } from "@mailstack/core";
import type { TestStack } from "./stack";
import { run, runOk } from "./tools";

/** The endpoint's address, on TEST-NET-3 (the stack's clients use TEST-NET-2, its host TEST-NET-1). */
export const SES_IP = "203.0.113.10";
/** The stack's end of the link: its smtp client's source address towards the endpoint. */
export const SES_LINK_IP = "203.0.113.1";

/** Which certificate the stand-in presents after STARTTLS. */
export type SesCertificate = "valid" | "wrong-name" | "untrusted";

export interface SesSettings {
  /** The IAM access key whose SMTP credentials are accepted: its id is the user name. */
  accessKeyId: string;
  secretAccessKey: string;
  /** `offer` (SES), `none` (not in EHLO), or `refuse` (offered, answered 454). */
  starttls?: "offer" | "none" | "refuse";
  certificate?: SesCertificate;
  /** Refuse every message at this command with `reply` (DATA: after the content, as SES does). */
  refuse?: { at: "MAIL" | "RCPT" | "DATA"; reply: string } | null;
}

export interface SesSession {
  id: number;
  client: string;
  tls: { protocol: string; cipher: string } | null;
  helo: string | null;
  auth: { mechanism: string; user: string; ok: boolean } | null;
  commands: { command: string; reply: string }[];
}

export interface SesMessage {
  session: number;
  client: string;
  tls: SesSession["tls"];
  auth: SesSession["auth"];
  from: string;
  rcpts: string[];
  data: string;
}

export class SesStandIn {
  private child?: ChildProcess;
  private lines?: Interface;
  private ns?: string;
  private settings?: SesSettings;

  private constructor(
    readonly region: string,
    readonly dir: string,
  ) {}

  /** The endpoint's name, certificates and CA; call before the stack starts, which must trust `caFile`. */
  static prepare(region: string): SesStandIn {
    const dir = mkdtempSync("/tmp/ms-ses-");
    // Postfix's smtp processes read the CA file; the keys stay the stand-in's (root).
    chmodSync(dir, 0o755);
    const standIn = new SesStandIn(region, dir);
    const name = standIn.endpoint;
    const file = (f: string) => join(dir, f);
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    runOk("openssl", ["req", "-x509", ...ec, "-days", "30", "-subj", "/CN=mailstack test SES CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", file("ca.key"), "-out", file("ca.pem")]);
    const issue = (cert: string, cn: string, signer: "ca" | "self") => {
      const ext = file(`${cert}.ext`);
      writeFileSync(ext, `subjectAltName=DNS:${cn}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
      if (signer === "self") {
        runOk("openssl", ["req", "-x509", ...ec, "-days", "30", "-subj", `/CN=${cn}`, "-addext", `subjectAltName=DNS:${cn}`, "-keyout", file(`${cert}.key`), "-out", file(`${cert}.pem`)]);
        return;
      }
      runOk("openssl", ["req", "-new", ...ec, "-subj", `/CN=${cn}`, "-keyout", file(`${cert}.key`), "-out", file(`${cert}.csr`)]);
      runOk("openssl", ["x509", "-req", "-in", file(`${cert}.csr`), "-CA", file("ca.pem"), "-CAkey", file("ca.key"), "-CAcreateserial", "-days", "30", "-extfile", ext, "-out", file(`${cert}.pem`)]);
    };
    issue("valid", name, "ca");
    // Another SES region's name, from the same CA: only the name is wrong.
    issue("wrong-name", sesSmtpEndpoint(region === "us-east-1" ? "eu-west-1" : "us-east-1"), "ca");
    // The right name, signed by nobody the stack trusts.
    issue("untrusted", name, "self");
    return standIn;
  }

  get endpoint(): string {
    return sesSmtpEndpoint(this.region);
  }

  /** The CA the stack's Postfix must trust (PEM). */
  get caFile(): string {
    return join(this.dir, "ca.pem");
  }

  /** The DNS record that sends the stack's relay here. */
  get record() {
    return { name: this.endpoint, type: "A" as const, content: SES_IP, ttl: 300 };
  }

  /** Starts the stand-in next to `stack`, linked to its namespace. */
  async start(stack: TestStack, settings: SesSettings): Promise<void> {
    const ns = `${stack.ns}-ses`;
    runOk("ip", ["netns", "add", ns]);
    this.ns = ns;
    // Each end is named ses0 inside its own namespace; the pair goes when either namespace does.
    runOk("ip", ["-n", stack.ns, "link", "add", "ses0", "type", "veth", "peer", "name", "ses0", "netns", ns]);
    runOk("ip", ["-n", stack.ns, "addr", "add", `${SES_LINK_IP}/24`, "dev", "ses0"]);
    runOk("ip", ["-n", ns, "addr", "add", `${SES_IP}/24`, "dev", "ses0"]);
    for (const n of [stack.ns, ns]) runOk("ip", ["-n", n, "link", "set", "ses0", "up"]);
    runOk("ip", ["-n", ns, "link", "set", "lo", "up"]);
    // Answers to the stack's clients on its loopback addresses (TEST-NET-1 and -2) go back over the link.
    runOk("ip", ["-n", ns, "route", "add", "default", "via", SES_LINK_IP]);
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, join(__dirname, "ses-smtp.mjs"), SES_IP, "587", this.dir], { stdio: ["pipe", "pipe", "inherit"] });
    this.child = child;
    this.lines = createInterface({ input: child.stdout! });
    const listening = this.nextLine();
    this.send(settings);
    const line = await Promise.race([listening, new Promise<string>((_, reject) => child.once("exit", (code) => reject(new Error(`ses-smtp.mjs exited ${code}`))))]);
    if (line !== "listening") throw new Error(`ses-smtp.mjs: ${line}`);
  }

  private nextLine(): Promise<string> {
    return new Promise((resolve) => this.lines!.once("line", resolve));
  }

  private send(settings: SesSettings): void {
    this.settings = settings;
    const certificate = settings.certificate ?? "valid";
    const line = { ...settings, region: this.region, cert: join(this.dir, `${certificate}.pem`), key: join(this.dir, `${certificate}.key`) };
    this.child!.stdin!.write(`${JSON.stringify(line)}\n`);
  }

  /** New settings (missing ones as SES has them); open connections are closed. */
  async set(settings: Partial<SesSettings>): Promise<void> {
    const acknowledged = this.nextLine();
    this.send({ accessKeyId: this.settings!.accessKeyId, secretAccessKey: this.settings!.secretAccessKey, ...settings });
    if ((await acknowledged) !== "ok") throw new Error("ses-smtp.mjs did not take its settings");
  }

  private read<T>(sub: string): T[] {
    return readdirSync(join(this.dir, sub))
      .filter((f) => f.endsWith(".json"))
      .sort()
      .map((f) => JSON.parse(readFileSync(join(this.dir, sub, f), "utf8")) as T);
  }

  /** Every SMTP session so far, in order. */
  sessions(): SesSession[] {
    return this.read("sessions");
  }

  /** Every message accepted so far, in order. */
  messages(): SesMessage[] {
    return this.read("messages");
  }

  async stop(): Promise<void> {
    if (this.child && this.child.exitCode === null) {
      const exited = new Promise((r) => this.child!.once("exit", r));
      this.child.stdin!.end();
      this.child.kill();
      await exited;
    }
    if (this.ns) run("ip", ["netns", "delete", this.ns]);
    if (!process.env.MAILSTACK_KEEP_STACK) rmSync(this.dir, { recursive: true, force: true });
  }
}
