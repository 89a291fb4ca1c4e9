/**
 * A stack's ports (inside its network namespace) on ports of this namespace's 127.0.0.1, so a
 * client that runs here, like `mailstack check`, can reach them: a TCP listener here per port,
 * relayed over a Unix socket to netns-relay.mjs in the namespace, which connects to the
 * daemon. A connection the daemon refuses is reset here, so a closed port stays visible as
 * one: the client sees ECONNRESET instead of a connection that opens and says nothing.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

export class NetnsBridge {
  private constructor(
    private readonly child: ChildProcess,
    private readonly servers: Server[],
    private readonly sockets: Set<Socket>,
    private readonly dir: string,
    /** Namespace port → port on 127.0.0.1 here. */
    readonly ports: Map<number, number>,
  ) {}

  static async start(ns: string, ports: number[]): Promise<NetnsBridge> {
    const dir = mkdtempSync("/tmp/ms-bridge-");
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, join(__dirname, "netns-relay.mjs"), dir, ...ports.map(String)], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`netns-relay.mjs exited ${code}`)));
      child.stdout!.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
    });
    const servers: Server[] = [];
    const sockets = new Set<Socket>();
    const mapped = new Map<number, number>();
    for (const port of ports) {
      const server = createServer((client) => {
        const relay = createConnection(join(dir, `${port}.sock`));
        for (const s of [client, relay]) {
          sockets.add(s);
          s.on("close", () => sockets.delete(s));
        }
        let answered = false;
        relay.on("data", () => (answered = true));
        // Every daemon here speaks first or answers a TLS hello: a relay that ends without a byte found no daemon.
        relay.on("end", () => answered || client.resetAndDestroy());
        relay.on("error", () => client.resetAndDestroy());
        client.on("error", () => relay.destroy());
        client.pipe(relay).pipe(client);
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      servers.push(server);
      mapped.set(port, (server.address() as AddressInfo).port);
    }
    return new NetnsBridge(child, servers, sockets, dir, mapped);
  }

  /** `--port N=M` arguments for `mailstack check`. */
  portArgs(): string[] {
    return [...this.ports].flatMap(([inside, here]) => ["--port", `${inside}=${here}`]);
  }

  async stop(): Promise<void> {
    // close() waits for open connections: a client that never hung up must not hold the suite.
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once("exit", r));
      this.child.kill("SIGTERM");
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
