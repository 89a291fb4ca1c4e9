/**
 * `mailstack check`: the mail service seen from outside, against what the stack's outputs
 * say it should be. One round of checks, or rounds until all pass (`--wait`).
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { parseArgs } from "node:util";
import type { DnsRecord } from "@mailstack/core";
import { DnsClient, normalName, parseServer, reversedOctets } from "./check-dns";
import { checkDnsbl, DBL_ZONE, ZEN_ZONE } from "./check-dnsbl";
import { fetchPolicy, policyVerdict } from "./check-mta-sts";
import { compareRecordSet, recordSets } from "./check-records";
import { checkHost } from "./check-status";
import { certificateVerdict, daneVerdict, MAIL_PORTS, portVerdict, probePort } from "./check-tls";
import { blocking, exitCode, formatReport, report, verdict, type Verdict } from "./check-verdict";
import { UsageError } from "./project";

export const CHECK_USAGE = `usage: mailstack check --outputs FILE|- [--json] [--strict] [--status [--expect-bundle SHA]] [--wait SECONDS]
                       [--resolver IP[:PORT]] [--connect IP] [--port 25=2525 ...] [--ca FILE] [--timeout SECONDS] [--skip ID ...]

Checks the running mail service from outside against the stack's outputs: DNS holds exactly the
planned records, the host's PTR names it, ports 25/465/587/993 answer with TLS and a valid
certificate, the MTA-STS policy is served, Spamhaus does not list the address or domains, and
(--status) the host reports the bundle in force and its health. Exit 0: all ok (warnings
allowed); 1: something failed (or warned, with --strict); 2: usage or outputs error.

  --outputs FILE      \`pulumi stack output --json\` of the stack, or - to read it from stdin
  --json              print the report as JSON instead of a table
  --strict            warnings fail too
  --status            also read the host's reports in SSM (AWS credentials and AWS_REGION needed)
  --parameter-path P  the stack's SSM path, when the outputs have no parameterPath
  --expect-bundle SHA the host must report this bundle applied (default: the outputs' hostBundleSha256)
  --wait SECONDS      repeat the checks until all pass or the time is up; progress on stderr
  --interval SECONDS  pause between rounds of --wait (default: 15)
  --resolver IP[:PORT] send every DNS query there (default: the system's resolvers)
  --connect IP        open the ports there instead of the outputs' publicIp
  --port N=M          connect to port M for port N (25, 465, 587, 993, 443); repeatable
  --ca FILE           PEM certificates to trust instead of Node's CAs (Mozilla's list)
  --dnsbl-zone ZONE   the DNSBL for the address (default: ${ZEN_ZONE})
  --dbl-zone ZONE     the domain blocklist (default: ${DBL_ZONE})
  --timeout SECONDS   for each query and connection (default: 10)
  --skip ID           leave out the checks with this id or id prefix (port:25, dnsbl, host:health…); repeatable`;

/** What the check needs of `pulumi stack output --json`. */
export interface StackOutputs {
  hostname: string;
  publicIp: string;
  dnsRecords: DnsRecord[];
  hostBundleSha256?: string;
  parameterPath?: string;
}

const RECORD_TYPES = ["A", "CNAME", "MX", "TXT", "SRV", "CAA", "TLSA"];

/** The outputs, or a UsageError that says which one is wrong and how to get good ones. */
export function parseOutputs(text: string, source: string): StackOutputs {
  const fix = "pass the JSON of `pulumi stack output --json` for the mail stack";
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--outputs ${source} is not JSON (${(e as Error).message}); ${fix}`);
  }
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw new UsageError(`--outputs ${source} is not a JSON object; ${fix}`);
  const problem = (what: string) => new UsageError(`--outputs ${source}: ${what}; ${fix}`);
  if (typeof doc.hostname !== "string" || doc.hostname === "") throw problem("hostname is missing");
  if (typeof doc.publicIp !== "string" || isIP(doc.publicIp) !== 4) throw problem(`publicIp ${JSON.stringify(doc.publicIp)} is not an IPv4 address`);
  if (!Array.isArray(doc.dnsRecords)) throw problem("dnsRecords is missing");
  doc.dnsRecords.forEach((r: Record<string, unknown>, i) => {
    const ok = r && typeof r === "object" && ["key", "zone", "name", "content"].every((k) => typeof r[k] === "string") && RECORD_TYPES.includes(r.type as string);
    if (!ok) throw problem(`dnsRecords[${i}] is not a DNS record (key, zone, name, type, content)`);
  });
  for (const key of ["hostBundleSha256", "parameterPath"]) {
    if (doc[key] !== undefined && typeof doc[key] !== "string") throw problem(`${key} is not a string`);
  }
  return {
    hostname: doc.hostname,
    publicIp: doc.publicIp,
    dnsRecords: doc.dnsRecords as DnsRecord[],
    hostBundleSha256: doc.hostBundleSha256 as string | undefined,
    parameterPath: doc.parameterPath as string | undefined,
  };
}

export interface CheckOptions {
  outputs: StackOutputs;
  dns: DnsClient;
  /** Where the ports are opened: `--connect`, or the outputs' publicIp. */
  address: string;
  /** `--connect`: also where the MTA-STS policy is fetched, instead of the address its name resolves to. */
  connect?: string;
  ports: Map<number, number>;
  ca?: string;
  timeoutMs: number;
  zones: { zen: string; dbl: string };
  /** Read the host's reports from SSM below this path. */
  statusPath?: string;
  expectBundle?: string;
  /** `--skip`: verdict ids, or their prefixes up to a colon, left out. */
  skip: string[];
}

/** Whether `--skip` leaves a check out: its id named whole, or a prefix of it up to a colon (`dnsbl`, `port:25`). */
export const skipped = (skip: string[], id: string): boolean => skip.some((s) => id === s || id.startsWith(`${s}:`));

const port = (o: CheckOptions, n: number) => o.ports.get(n) ?? n;

async function checkDns(o: CheckOptions): Promise<Verdict[]> {
  const sets = recordSets(o.outputs.dnsRecords);
  const results = await Promise.all(sets.map(async (set) => compareRecordSet(set, await o.dns.query(set.name, set.type))));
  return results.flat();
}

/** Forward-confirmed reverse DNS: receivers compare it with the HELO name. */
async function checkPtr(o: CheckOptions): Promise<Verdict> {
  const { publicIp, hostname } = o.outputs;
  const [ptr, forward] = await Promise.all([o.dns.query(`${reversedOctets(publicIp)}.in-addr.arpa`, "PTR"), o.dns.query(hostname, "A")]);
  const want = normalName(hostname);
  const expected = `${want}, whose A is ${publicIp}`;
  const check = `PTR ${publicIp} (reverse DNS)`;
  if (ptr.values.length === 0) return verdict(`ptr:${publicIp}`, check, "fail", expected, ptr.rcode === "NOERROR" || ptr.rcode === "NXDOMAIN" ? "no PTR record" : `no answer (${ptr.rcode})`);
  if (ptr.values.length !== 1 || ptr.values[0] !== want) return verdict(`ptr:${publicIp}`, check, "fail", expected, `${ptr.values.join(", ")} (the HELO name is ${want})`);
  if (!forward.values.includes(publicIp)) return verdict(`ptr:${publicIp}`, check, "fail", expected, `${want}, but its A is ${forward.values.join(", ") || `missing (${forward.rcode})`}`);
  return verdict(`ptr:${publicIp}`, check, "ok", expected, `${want} → ${forward.values.join(", ")}`);
}

async function checkMtaSts(o: CheckOptions): Promise<Verdict[]> {
  const records = o.outputs.dnsRecords;
  const policies = records.filter((r) => r.type === "TXT" && normalName(r.name).startsWith("_mta-sts."));
  return Promise.all(
    policies.map(async (r) => {
      const domain = normalName(r.name).slice("_mta-sts.".length);
      const plannedId = /id=([A-Za-z0-9]+)/.exec(r.content)?.[1] ?? "";
      const mx = records.filter((m) => m.type === "MX" && normalName(m.name) === domain && m.content !== ".").map((m) => normalName(m.content));
      let address = o.connect;
      if (address === undefined) {
        const a = await o.dns.query(`mta-sts.${domain}`, "A");
        if (a.values.length === 0) return policyVerdict(domain, plannedId, mx, { error: `mta-sts.${domain} has no address (${a.rcode})` });
        address = a.values[0];
      }
      return policyVerdict(domain, plannedId, mx, await fetchPolicy(domain, address, port(o, 443), o.ca, o.timeoutMs));
    }),
  );
}

async function checkPorts(o: CheckOptions): Promise<Verdict[]> {
  const tls = { address: o.address, hostname: o.outputs.hostname, ca: o.ca, timeoutMs: o.timeoutMs };
  // A skipped port is not even opened: port 25 is blocked outbound on many networks, and would time out.
  const results = await Promise.all(MAIL_PORTS.filter((p) => !skipped(o.skip, `port:${p.port}`)).map((p) => probePort(p, port(o, p.port), tls)));
  const verdicts = [...results.map(portVerdict), certificateVerdict(results, o.outputs.hostname, new Date())];
  const tlsa = o.outputs.dnsRecords.find((r) => r.type === "TLSA" && normalName(r.name) === `_25._tcp.${normalName(o.outputs.hostname)}`);
  if (tlsa?.data?.kind === "TLSA" && !skipped(o.skip, "port:25")) verdicts.push(daneVerdict(tlsa.data.certificate, results.find((r) => r.port.port === 25)));
  return verdicts;
}

/** One round: every check, in the order the report shows them. */
export async function runChecks(o: CheckOptions): Promise<Verdict[]> {
  const domains = [...new Set(o.outputs.dnsRecords.filter((r) => r.type === "MX" && r.content !== ".").map((r) => normalName(r.name)))];
  const parts = await Promise.all([
    checkDns(o),
    checkPtr(o).then((v) => [v]),
    checkMtaSts(o),
    checkPorts(o),
    checkDnsbl(o.dns, o.outputs.publicIp, domains, o.zones),
    o.statusPath ? checkHost(o.statusPath, o.expectBundle, o.timeoutMs, () => new Date()) : Promise.resolve([]),
  ]);
  return parts.flat().filter((v) => !skipped(o.skip, v.id));
}

function seconds(option: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n <= 0) throw new UsageError(`--${option} must be a positive number of seconds, not ${JSON.stringify(text)}`);
  return n;
}

function readText(option: string, file: string): string {
  try {
    return readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (e) {
    throw new UsageError(`--${option} ${file}: ${(e as Error).message}`);
  }
}

const MAPPABLE = [...MAIL_PORTS.map((p) => p.port), 443];

/** The command line, checked before anything is asked of the network; UsageError for every mistake. */
export function parseCheckArgs(argv: string[]): { options: CheckOptions; json: boolean; strict: boolean; waitSeconds?: number; intervalSeconds: number } | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      allowPositionals: false,
      options: {
        outputs: { type: "string" },
        json: { type: "boolean", default: false },
        strict: { type: "boolean", default: false },
        status: { type: "boolean", default: false },
        "parameter-path": { type: "string" },
        "expect-bundle": { type: "string" },
        wait: { type: "string" },
        interval: { type: "string" },
        resolver: { type: "string" },
        connect: { type: "string" },
        port: { type: "string", multiple: true, default: [] },
        ca: { type: "string" },
        "dnsbl-zone": { type: "string", default: ZEN_ZONE },
        "dbl-zone": { type: "string", default: DBL_ZONE },
        timeout: { type: "string" },
        skip: { type: "string", multiple: true, default: [] },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${CHECK_USAGE}`);
  }
  if (values.help) return "help";
  if (values.outputs === undefined) throw new UsageError(`--outputs is required: \`pulumi stack output --json | mailstack check --outputs -\`\n\n${CHECK_USAGE}`);
  const timeoutMs = seconds("timeout", values.timeout, 10) * 1000;
  const waitSeconds = values.wait === undefined ? undefined : seconds("wait", values.wait, 0);
  const intervalSeconds = seconds("interval", values.interval, 15);
  let server;
  if (values.resolver !== undefined) {
    server = parseServer(values.resolver);
    if (!server) throw new UsageError(`--resolver ${values.resolver} is not IP, IP:PORT or [IPv6]:PORT`);
  }
  if (values.connect !== undefined && !isIP(values.connect)) throw new UsageError(`--connect ${values.connect} is not an IP address`);
  const ports = new Map<number, number>();
  for (const mapping of values.port) {
    const m = /^(\d+)=(\d+)$/.exec(mapping);
    const to = m ? Number(m[2]) : 0;
    if (!m || !MAPPABLE.includes(Number(m[1])) || to < 1 || to > 65535) {
      throw new UsageError(`--port ${mapping} is not N=M with N one of ${MAPPABLE.join(", ")} and M a port (e.g. --port 25=2525)`);
    }
    ports.set(Number(m[1]), to);
  }
  for (const option of ["dnsbl-zone", "dbl-zone"] as const) {
    if (!/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+\.?$/.test(values[option])) throw new UsageError(`--${option} ${values[option]} is not a DNS zone name`);
  }
  if (values["expect-bundle"] !== undefined && !values.status) throw new UsageError("--expect-bundle compares with the host's own report: add --status");
  if (values["expect-bundle"] !== undefined && !/^[0-9a-f]{64}$/.test(values["expect-bundle"])) throw new UsageError(`--expect-bundle must be a hex SHA-256 (64 digits), like the hostBundleSha256 output`);
  const outputs = parseOutputs(readText("outputs", values.outputs), values.outputs === "-" ? "(stdin)" : values.outputs);
  const statusPath = values.status ? (values["parameter-path"] ?? outputs.parameterPath) : undefined;
  if (values.status && !statusPath) throw new UsageError("--status needs the stack's SSM path: the outputs have no parameterPath; pass --parameter-path /mailstack/<project>/<stack>/<name>");
  if (statusPath !== undefined && !/^\/[A-Za-z0-9_.\-/]*[A-Za-z0-9_.-]$/.test(statusPath)) throw new UsageError(`--parameter-path ${statusPath} is not an SSM path like /mailstack/prod/mail`);
  const ca = values.ca === undefined ? undefined : readText("ca", values.ca);
  if (ca !== undefined && !ca.includes("-----BEGIN CERTIFICATE-----")) throw new UsageError(`--ca ${values.ca} holds no PEM certificate`);
  let dns: DnsClient;
  try {
    dns = new DnsClient(server, timeoutMs);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return {
    json: values.json,
    strict: values.strict,
    waitSeconds,
    intervalSeconds,
    options: {
      outputs,
      dns,
      address: values.connect ?? outputs.publicIp,
      connect: values.connect,
      ports,
      ca,
      timeoutMs,
      zones: { zen: values["dnsbl-zone"].replace(/\.$/, ""), dbl: values["dbl-zone"].replace(/\.$/, "") },
      statusPath,
      expectBundle: values["expect-bundle"] ?? outputs.hostBundleSha256,
      skip: values.skip,
    },
  };
}

/** Runs `mailstack check` with its arguments; the exit code. Usage errors are thrown as UsageError. */
export async function check(argv: string[]): Promise<number> {
  const parsed = parseCheckArgs(argv);
  if (parsed === "help") {
    process.stdout.write(`${CHECK_USAGE}\n`);
    return 0;
  }
  const { options, json, strict, waitSeconds, intervalSeconds } = parsed;
  const started = Date.now();
  const deadline = started + (waitSeconds ?? 0) * 1000;
  let round = 0;
  for (;;) {
    round++;
    const at = new Date();
    const result = report(await runChecks(options), strict, at, round);
    const elapsed = Math.round((Date.now() - started) / 1000);
    const waitMs = Math.min(intervalSeconds * 1000, deadline - Date.now());
    if (waitSeconds !== undefined) {
      const open = blocking(result.checks, strict);
      if (result.ok) process.stderr.write(`mailstack check: round ${round}, ${elapsed} s: all checks pass\n`);
      else {
        const next = waitMs > 0 ? `checking again in ${Math.ceil(waitMs / 1000)} s` : `giving up after ${waitSeconds} s`;
        process.stderr.write(`mailstack check: round ${round}, ${elapsed} s: ${open.length} not passing (${open.map((v) => v.check).join("; ")}); ${next}\n`);
      }
    }
    if (result.ok || waitMs <= 0) {
      process.stdout.write(json ? `${JSON.stringify({ hostname: options.outputs.hostname, address: options.address, resolver: options.dns.describe(), ...result }, null, 2)}\n` : `${formatReport(result)}\n`);
      return exitCode(result);
    }
    await new Promise((r) => setTimeout(r, waitMs));
  }
}
