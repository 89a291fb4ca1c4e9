/**
 * The DNS client of `mailstack check`. Every query goes through dns-packet (encoding and
 * decoding only; the transport is here) rather than Node's `dns.promises.Resolver`, because:
 * Node cannot ask for TLSA at all, and it reports a failed lookup as an error code that folds
 * SERVFAIL, REFUSED and timeouts together, while the check must tell "this name does not
 * exist" (a missing record, or "not listed" on a DNSBL) from "could not ask". One client for
 * every type also means one `--resolver` and one timeout for all of them. dns-packet has no
 * dependencies of its own and is the codec behind multicast-dns and bonjour.
 */
import { getServers } from "node:dns";
import { createSocket } from "node:dgram";
import { isIP, Socket } from "node:net";
import * as packet from "dns-packet";
import { randomInt } from "node:crypto";

/** The record types the check asks for. */
export type QueryType = "A" | "CNAME" | "MX" | "TXT" | "SRV" | "CAA" | "TLSA" | "PTR";

/**
 * One answer. `values` hold the records of the asked type in the check's canonical form
 * (see {@link canonicalAnswer}); a CNAME followed on the way is left out.
 */
export interface Lookup {
  /** NOERROR, NXDOMAIN, SERVFAIL, REFUSED…, or TIMEOUT when no server answered. */
  rcode: string;
  values: string[];
}

/** A DNS server to send every query to: an address and a port. */
export interface DnsServer {
  host: string;
  port: number;
}

/** Parses `IP`, `IP:PORT`, `[IPv6]:PORT` or a bare IPv6 address; undefined when it is none of them. */
export function parseServer(text: string): DnsServer | undefined {
  const bracketed = text.match(/^\[([^\]]+)\](?::(\d+))?$/);
  const [host, port] = bracketed ? [bracketed[1], bracketed[2]] : isIP(text) === 6 ? [text, undefined] : text.split(/:(?=\d+$)/);
  const number = port === undefined ? 53 : Number(port);
  if (!isIP(host) || !Number.isInteger(number) || number < 1 || number > 65535) return undefined;
  return { host, port: number };
}

/** Lower case, no trailing dot: how the check compares names. */
export const normalName = (name: string): string => name.toLowerCase().replace(/\.$/, "") || ".";

/** DNS presentation-style text of one answer of the asked type, as the record comparison expects it. */
function canonicalAnswer(answer: packet.Answer): string | undefined {
  switch (answer.type) {
    case "A":
    case "CNAME":
    case "PTR":
      return answer.type === "A" ? answer.data : normalName(answer.data);
    case "MX":
      return `${answer.data.preference ?? 0} ${normalName(answer.data.exchange)}`;
    case "TXT": {
      // The character-strings joined: receivers (SPF, DKIM, DMARC) read the value so, whatever the split.
      const parts = Array.isArray(answer.data) ? answer.data : [answer.data];
      return Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p) : p))).toString("utf8");
    }
    case "SRV":
      return `${answer.data.priority ?? 0} ${answer.data.weight ?? 0} ${answer.data.port} ${normalName(answer.data.target)}`;
    case "CAA":
      return `${answer.data.flags ?? 0} ${answer.data.tag} "${answer.data.value}"`;
    case "TLSA":
      return `${answer.data.usage} ${answer.data.selector} ${answer.data.matchingType} ${answer.data.certificate.toString("hex")}`;
    default:
      return undefined;
  }
}

export class DnsClient {
  private readonly servers: DnsServer[];

  /**
   * @param server where every query goes; by default the system's resolvers (resolv.conf), in turn
   * @param timeoutMs per attempt; UDP is tried twice, then the next server
   */
  constructor(server: DnsServer | undefined, private readonly timeoutMs: number) {
    this.servers = server ? [server] : getServers().map((s) => parseServer(s)).filter((s): s is DnsServer => s !== undefined);
    if (this.servers.length === 0) throw new Error("no DNS server configured on this machine; pass --resolver IP[:PORT]");
  }

  /** Where queries go, for the report. */
  describe(): string {
    return this.servers.map((s) => (isIP(s.host) === 6 ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`)).join(", ");
  }

  async query(name: string, type: QueryType): Promise<Lookup> {
    const question: packet.Packet = {
      type: "query",
      id: randomInt(65536),
      flags: packet.RECURSION_DESIRED,
      questions: [{ type, name: normalName(name) }],
      // EDNS0 with the size the DNS flag day 2020 settled on: a 2048-bit DKIM key fits, and truncation moves to TCP.
      additionals: [{ type: "OPT", name: ".", udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }],
    };
    let last: Lookup = { rcode: "TIMEOUT", values: [] };
    for (const server of this.servers) {
      for (let attempt = 0; attempt < 2; attempt++) {
        const reply = await this.udp(server, question).catch(() => undefined);
        if (!reply) continue;
        const full = reply.flag_tc ? await this.tcp(server, question).catch(() => undefined) : reply;
        if (!full) continue;
        const rcode = (full as packet.DecodedPacket & { rcode?: string }).rcode ?? "NOERROR";
        last = {
          rcode,
          values: (full.answers ?? []).filter((a) => a.type === type).map(canonicalAnswer).filter((v): v is string => v !== undefined),
        };
        // Another server may know better than one that failed; an answer, even NXDOMAIN, is final.
        if (rcode === "NOERROR" || rcode === "NXDOMAIN") return last;
        break;
      }
    }
    return last;
  }

  private udp(server: DnsServer, question: packet.Packet): Promise<packet.DecodedPacket> {
    return new Promise((resolve, reject) => {
      const socket = createSocket(isIP(server.host) === 6 ? "udp6" : "udp4");
      const done = (error?: Error, reply?: packet.DecodedPacket) => {
        clearTimeout(timer);
        socket.close();
        if (reply) resolve(reply);
        else reject(error);
      };
      const timer = setTimeout(() => done(new Error("timeout")), this.timeoutMs);
      socket.on("error", (e) => done(e));
      socket.on("message", (message) => {
        try {
          const reply = packet.decode(message);
          // A stray or spoofed datagram is not the answer: wait on for the right id.
          if (reply.id === question.id && reply.type === "response") done(undefined, reply);
        } catch {
          // Undecodable: not our answer either.
        }
      });
      socket.send(packet.encode(question), server.port, server.host, (e) => e && done(e));
    });
  }

  private tcp(server: DnsServer, question: packet.Packet): Promise<packet.DecodedPacket> {
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      let data = Buffer.alloc(0);
      const timer = setTimeout(() => socket.destroy(new Error("timeout")), this.timeoutMs);
      socket.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      socket.on("data", (chunk: Buffer) => {
        data = Buffer.concat([data, chunk]);
        if (data.length < 2 || data.length < 2 + data.readUInt16BE(0)) return;
        clearTimeout(timer);
        socket.destroy();
        try {
          resolve(packet.decode(data.subarray(2, 2 + data.readUInt16BE(0))));
        } catch (e) {
          reject(e as Error);
        }
      });
      socket.connect(server.port, server.host, () => socket.write(packet.streamEncode(question)));
    });
  }
}

/** The reversed octets of an IPv4 address, as PTR and DNSBL names start. */
export const reversedOctets = (address: string): string => address.split(".").reverse().join(".");
