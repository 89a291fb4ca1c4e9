/**
 * An authoritative DNS server from Debian (Knot DNS) serving zone files on loopback, so that
 * tests query the records the core exports through a real server and real DNS clients
 * (`dig`, Node's c-ares resolver) instead of reading the record objects back.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { Resolver } from "node:dns/promises";
import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import { join } from "node:path";
import type { DNSResolver } from "mailauth";
import { requireTools, run, runOk, type RunResult, tempRoot, TOOL_PATH } from "./tools";

/** Whether a port is free for `kind` on 127.0.0.1, tried by binding it. */
function bindable(kind: "tcp" | "udp", port: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (kind === "tcp") {
      const server = createServer();
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
    } else {
      const socket = createSocket("udp4");
      socket.once("error", () => resolve(false));
      socket.bind(port, "127.0.0.1", () => socket.close(() => resolve(true)));
    }
  });
}

/**
 * A port free for both TCP and UDP, below the kernel's ephemeral range (32768 and up), where
 * any client's UDP socket (a resolver's query, say) could take it between the check and
 * knotd's bind, leaving knotd without its UDP listener.
 */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 10000);
    if ((await bindable("tcp", port)) && (await bindable("udp", port))) return port;
  }
  throw new Error("no port free for both TCP and UDP between 20000 and 29999");
}

/** One answer of `dig`: the header's status and flags, and the records of the answer section. */
export interface DigAnswer {
  status: string;
  flags: string[];
  records: { name: string; ttl: number; type: string; rdata: string }[];
}

export class AuthoritativeDns {
  private constructor(
    private readonly root: string,
    private readonly daemon: ChildProcess,
    readonly port: number,
  ) {}

  /** Starts knotd serving each zone (name → zone file text); every zone must load. */
  static async start(zones: Record<string, string>): Promise<AuthoritativeDns> {
    requireTools("knotd", "dig");
    const root = tempRoot("ms-dns");
    const port = await freePort();
    for (const [zone, text] of Object.entries(zones)) writeFileSync(join(root, `${zone}.zone`), text);
    writeFileSync(
      join(root, "knot.conf"),
      [
        "server:",
        `    rundir: "${root}"`,
        `    listen: 127.0.0.1@${port}`,
        "database:",
        `    storage: "${root}"`,
        "log:",
        "  - target: stderr",
        "    any: info",
        // AXFR lets a test see everything a zone holds, not only the names it asks for.
        "acl:",
        "  - id: local-transfer",
        "    address: 127.0.0.1",
        "    action: transfer",
        "template:",
        "  - id: default",
        `    storage: "${root}"`,
        // A zone that fails Knot's semantic checks is refused, not served half-loaded.
        "    semantic-checks: on",
        "    zonefile-sync: -1",
        "    zonefile-load: whole",
        "    journal-content: none",
        "zone:",
        ...Object.keys(zones).flatMap((zone) => [`  - domain: ${zone}`, `    file: ${zone}.zone`, "    acl: local-transfer"]),
        "",
      ].join("\n"),
    );
    const log = openSync(join(root, "knot.log"), "w");
    const daemon = spawn("knotd", ["-c", join(root, "knot.conf")], { stdio: ["ignore", log, log], env: { ...process.env, PATH: TOOL_PATH } });
    closeSync(log);
    const server = new AuthoritativeDns(root, daemon, port);
    try {
      await server.waitForZones(Object.keys(zones));
    } catch (e) {
      await server.stop();
      throw e;
    }
    return server;
  }

  private async waitForZones(zones: string[]): Promise<void> {
    const deadline = Date.now() + 20000;
    for (;;) {
      if (this.daemon.exitCode !== null) throw new Error(`knotd exited ${this.daemon.exitCode}\n${this.log()}`);
      // dig exits 9 while knotd is not listening yet.
      if (zones.every((zone) => run("dig", [...this.digArgs(), zone, "SOA"]).stdout.includes("status: NOERROR"))) return;
      if (Date.now() > deadline) throw new Error(`knotd did not serve ${zones.join(", ")}\n${this.log()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  log(): string {
    return readFileSync(join(this.root, "knot.log"), "utf8");
  }

  /** Asks the server one question with dig, without recursion, and parses the reply. */
  dig(name: string, type: string): DigAnswer {
    return parseDig(runOk("dig", [...this.digArgs(), name, type]));
  }

  private digArgs(): string[] {
    return ["@127.0.0.1", "-p", String(this.port), "+norecurse", "+nosplit", "+noall", "+comments", "+answer"];
  }

  /** Every record of a zone, by zone transfer. */
  transfer(zone: string): DigAnswer["records"] {
    const r = runOk("dig", ["@127.0.0.1", "-p", String(this.port), "+nosplit", "+noall", "+answer", zone, "AXFR"]);
    return parseDig(r).records;
  }

  /** A resolver in the shape mailauth takes (dns.promises.resolve), asking this server only. */
  resolver(): DNSResolver {
    const resolver = new Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([`127.0.0.1:${this.port}`]);
    // mailauth's type names only TXT's and A's shapes; it also reads MX records from this.
    return (name, type) => resolver.resolve(name, type) as Promise<string[][] | string[]>;
  }

  async stop(): Promise<void> {
    if (this.daemon.exitCode === null) {
      const exited = new Promise((r) => this.daemon.once("exit", r));
      this.daemon.kill("SIGTERM");
      await exited;
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}

function parseDig(r: RunResult): DigAnswer {
  const status = r.stdout.match(/status: (\w+)/)?.[1] ?? "";
  const flags = (r.stdout.match(/^;; flags: ([^;]*);/m)?.[1] ?? "").trim().split(/\s+/);
  const records = r.stdout
    .split("\n")
    .filter((l) => l && !l.startsWith(";"))
    .map((l) => {
      const m = l.match(/^(\S+)\s+(\d+)\s+IN\s+(\S+)\s+(.*)$/);
      if (!m) throw new Error(`unexpected dig line: ${l}`);
      return { name: m[1], ttl: Number(m[2]), type: m[3], rdata: m[4] };
    });
  return { status, flags, records };
}

/**
 * The character-strings of a TXT (or CAA value) in presentation form, unescaped: `\"`, `\\`
 * and dig's `\DDD` for bytes it does not print.
 */
export function characterStrings(rdata: string): string[] {
  const strings: string[] = [];
  for (const m of rdata.matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
    const bytes: number[] = [];
    const s = m[1];
    for (let i = 0; i < s.length; i++) {
      if (s[i] === "\\" && /^\d{3}$/.test(s.slice(i + 1, i + 4))) {
        bytes.push(Number(s.slice(i + 1, i + 4)));
        i += 3;
      } else if (s[i] === "\\") {
        bytes.push(...Buffer.from(s[++i]));
      } else {
        bytes.push(...Buffer.from(s[i]));
      }
    }
    strings.push(Buffer.from(bytes).toString("utf8"));
  }
  return strings;
}
