/**
 * The mail ports as a client meets them: SMTP with STARTTLS on 25 and 587, implicit TLS on
 * 465 (SMTP) and 993 (IMAP), and the certificate they present.
 */
import { createHash, X509Certificate } from "node:crypto";
import { Socket } from "node:net";
import { checkServerIdentity, connect as tlsConnect, type PeerCertificate, type TLSSocket } from "node:tls";
import { MONITORING_ALARMS } from "@mailstack/core";
import { verdict, type Verdict } from "./check-verdict";

export interface MailPort {
  port: number;
  what: string;
  /** starttls: SMTP, upgraded with STARTTLS; smtps / imaps: TLS from the first byte. */
  mode: "starttls" | "smtps" | "imaps";
}

export const MAIL_PORTS: MailPort[] = [
  { port: 25, what: "SMTP from other servers", mode: "starttls" },
  { port: 465, what: "submission over TLS", mode: "smtps" },
  { port: 587, what: "submission with STARTTLS", mode: "starttls" },
  { port: 993, what: "IMAP over TLS", mode: "imaps" },
];

/** What the check learned of a certificate; all a verdict needs, so verdicts are testable without a server. */
export interface CertificateSeen {
  fingerprint256: string;
  subjectAltName: string;
  validFrom: Date;
  validTo: Date;
  /** OpenSSL's reason the chain is not trusted (CERT_HAS_EXPIRED, SELF_SIGNED_CERT_IN_CHAIN…); undefined when it is. */
  chainError?: string;
  /** Why the certificate does not cover the host name; undefined when it does. */
  nameError?: string;
  /** Hex SHA-256 of the DER SubjectPublicKeyInfo: the data of a TLSA 3 1 1 record. */
  spkiSha256: string;
}

export interface PortResult {
  port: MailPort;
  /** The port, possibly remapped, and the address connected to. */
  target: string;
  /** What the server said and how TLS went, or why it did not. */
  error?: string;
  banner?: string;
  protocol?: string;
  certificate?: CertificateSeen;
}

export interface TlsOptions {
  address: string;
  hostname: string;
  /** PEM trust anchors; undefined: Node's (Mozilla's list, plus NODE_EXTRA_CA_CERTS). */
  ca?: string;
  timeoutMs: number;
}

/** Reads CRLF lines off a socket, one protocol reply at a time. */
class LineReader {
  private buffer = "";
  private waiting?: { done: (line: string) => void; fail: (e: Error) => void };
  private ended?: Error;

  constructor(private readonly socket: Socket) {
    socket.on("data", this.onData);
    socket.once("close", () => this.end(new Error("the server closed the connection")));
    socket.once("error", (e) => this.end(e));
  }

  private readonly onData = (chunk: Buffer) => {
    this.buffer += chunk.toString("latin1");
    this.deliver();
  };

  private end(e: Error) {
    this.ended ??= e;
    this.deliver();
  }

  private deliver() {
    if (!this.waiting) return;
    const at = this.buffer.indexOf("\n");
    if (at >= 0) {
      const line = this.buffer.slice(0, at).replace(/\r$/, "");
      this.buffer = this.buffer.slice(at + 1);
      const w = this.waiting;
      this.waiting = undefined;
      w.done(line);
    } else if (this.ended) {
      const w = this.waiting;
      this.waiting = undefined;
      w.fail(this.ended);
    }
  }

  line(): Promise<string> {
    return new Promise((done, fail) => {
      this.waiting = { done, fail };
      this.deliver();
    });
  }

  /** A whole SMTP reply: its lines, the last of which has a space after the code. */
  async smtpReply(): Promise<string[]> {
    const lines: string[] = [];
    for (;;) {
      const line = await this.line();
      lines.push(line);
      if (!/^\d{3}-/.test(line)) return lines;
    }
  }

  /** Stops reading, leaving what follows to the TLS layer. */
  detach() {
    this.socket.off("data", this.onData);
  }
}

function openSocket(address: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    socket.once("error", reject);
    socket.connect(port, address, () => {
      socket.off("error", reject);
      resolve(socket);
    });
  });
}

function startTls(options: TlsOptions, socket?: Socket, port?: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    // Verified below, so an untrusted or expired certificate is reported rather than hiding the rest.
    const tls = tlsConnect({ socket, host: options.address, port, servername: options.hostname, ca: options.ca, rejectUnauthorized: false });
    tls.setTimeout(options.timeoutMs, () => tls.destroy(new Error(`TLS handshake not finished within ${options.timeoutMs / 1000} s`)));
    tls.once("error", reject);
    tls.once("secureConnect", () => {
      tls.off("error", reject);
      resolve(tls);
    });
  });
}

function certificateOf(tls: TLSSocket, hostname: string): CertificateSeen | undefined {
  const peer: PeerCertificate = tls.getPeerCertificate();
  if (!peer || !peer.raw) return undefined;
  const x509 = new X509Certificate(peer.raw);
  const spki = x509.publicKey.export({ type: "spki", format: "der" });
  return {
    fingerprint256: peer.fingerprint256,
    subjectAltName: peer.subjectaltname ?? "",
    validFrom: new Date(peer.valid_from),
    validTo: new Date(peer.valid_to),
    chainError: tls.authorized ? undefined : String(tls.authorizationError),
    nameError: checkServerIdentity(hostname, peer)?.message,
    spkiSha256: createHash("sha256").update(spki).digest("hex"),
  };
}

/** Connects to one port, speaks its protocol up to TLS and its greeting, and says goodbye. */
export async function probePort(port: MailPort, remapped: number, options: TlsOptions): Promise<PortResult> {
  const target = `${options.address}:${remapped}`;
  const result: PortResult = { port, target };
  let tls: TLSSocket | undefined;
  let plain: Socket | undefined;
  try {
    if (port.mode === "starttls") {
      plain = await openSocket(options.address, remapped, options.timeoutMs);
      const reader = new LineReader(plain);
      const greeting = await reader.smtpReply();
      result.banner = greeting[0];
      if (!greeting[0].startsWith("220")) throw new Error(`greeting is not 220: ${greeting.join(" / ")}`);
      plain.write("EHLO mailstack-check.invalid\r\n");
      const ehlo = await reader.smtpReply();
      if (!ehlo.some((l) => /^250[- ]STARTTLS$/i.test(l))) throw new Error(`STARTTLS is not offered (EHLO: ${ehlo.map((l) => l.slice(4)).join(", ")})`);
      plain.write("STARTTLS\r\n");
      const go = await reader.smtpReply();
      if (!go[0].startsWith("220")) throw new Error(`STARTTLS refused: ${go.join(" / ")}`);
      reader.detach();
      tls = await startTls(options, plain);
    } else {
      tls = await startTls(options, undefined, remapped);
      const reader = new LineReader(tls);
      const greeting = port.mode === "smtps" ? (await reader.smtpReply())[0] : await reader.line();
      result.banner = greeting;
      const good = port.mode === "smtps" ? greeting.startsWith("220") : greeting.startsWith("* OK");
      if (!good) throw new Error(`unexpected greeting over TLS: ${greeting}`);
    }
    result.protocol = tls.getProtocol() ?? undefined;
    result.certificate = certificateOf(tls, options.hostname);
    tls.end(port.mode === "imaps" ? "a LOGOUT\r\n" : "QUIT\r\n");
  } catch (e) {
    // A firewall's reject and a port nobody listens on look alike from outside.
    const code = (e as NodeJS.ErrnoException).code;
    result.error = code === "ECONNREFUSED" || code === "ECONNRESET" ? "connection refused or reset" : (e as Error).message;
  } finally {
    tls?.destroy();
    plain?.destroy();
  }
  return result;
}

export function portVerdict(r: PortResult): Verdict {
  const how = r.port.mode === "starttls" ? "STARTTLS" : "TLS";
  const expected = `answers, ${how}${r.port.mode === "imaps" ? ", IMAP greeting" : ", SMTP 220"}`;
  const check = `port ${r.port.port} (${r.port.what})${r.target.endsWith(`:${r.port.port}`) ? "" : ` at ${r.target}`}`;
  if (r.error) return verdict(`port:${r.port.port}`, check, "fail", expected, r.error);
  return verdict(`port:${r.port.port}`, check, "ok", expected, `${r.protocol}, ${r.banner}`);
}

const DAY = 86400000;
/** The `certificateExpiry` alarm's default: renewal starts with 30 days left, so under this it has been failing for weeks. */
export const CERTIFICATE_WARN_DAYS = MONITORING_ALARMS.certificateExpiry.threshold;

/** One verdict on the certificates the ports served; several differing ones are each described. */
export function certificateVerdict(results: PortResult[], hostname: string, now: Date): Verdict {
  const id = "tls:certificate";
  const check = `certificate for ${hostname}`;
  const expected = `trusted, valid for ${hostname}, ${CERTIFICATE_WARN_DAYS}+ days left`;
  const served = results.filter((r) => r.certificate);
  if (served.length === 0) return verdict(id, check, "fail", expected, "no port completed a TLS handshake");
  const byPrint = new Map<string, { cert: CertificateSeen; ports: number[] }>();
  for (const r of served) {
    const entry = byPrint.get(r.certificate!.fingerprint256) ?? { cert: r.certificate!, ports: [] };
    entry.ports.push(r.port.port);
    byPrint.set(r.certificate!.fingerprint256, entry);
  }
  const rank = { ok: 0, warn: 1, fail: 2 } as const;
  let worst: keyof typeof rank = "ok";
  const texts = [...byPrint.values()].map(({ cert, ports }) => {
    const days = Math.floor((cert.validTo.getTime() - now.getTime()) / DAY);
    const until = cert.validTo.toISOString().slice(0, 10);
    let status: keyof typeof rank;
    let text: string;
    if (cert.validTo.getTime() <= now.getTime()) {
      status = "fail";
      text = `expired ${until} (${-days} days ago)`;
    } else if (cert.validFrom.getTime() > now.getTime()) {
      status = "fail";
      text = `not valid before ${cert.validFrom.toISOString()}`;
    } else if (cert.chainError) {
      status = "fail";
      text = `not trusted: ${cert.chainError}`;
    } else if (cert.nameError) {
      status = "fail";
      text = `${cert.nameError}`;
    } else {
      status = days < CERTIFICATE_WARN_DAYS ? "warn" : "ok";
      text = `valid until ${until}, ${days} days left${status === "warn" ? " (renewal is overdue)" : ""}`;
    }
    if (rank[status] > rank[worst]) worst = status;
    return byPrint.size > 1 ? `ports ${ports.join(", ")}: ${text}` : text;
  });
  return verdict(id, check, worst, expected, texts.join("; "));
}

/** DANE: the TLSA data must be the SHA-256 of the key that port 25 presents. */
export function daneVerdict(tlsaData: string, port25: PortResult | undefined): Verdict {
  const id = "tls:dane";
  const check = "TLSA matches the key on port 25";
  const expected = `SPKI SHA-256 ${tlsaData}`;
  if (!port25?.certificate) return verdict(id, check, "fail", expected, "port 25 presented no certificate");
  const found = port25.certificate.spkiSha256;
  return verdict(id, check, found === tlsaData.toLowerCase() ? "ok" : "fail", expected, `SPKI SHA-256 ${found}`);
}
