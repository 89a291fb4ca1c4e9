/**
 * The network clients of `mailstack check` on loopback: its DNS client against Knot DNS
 * (every type it asks for, truncation moving to TCP, the answers that are not records), and
 * its SSM reader against the SSM stand-in (reports found, missing, access denied).
 */
import { createSocket, type Socket } from "node:dgram";
import type { AddressInfo } from "node:net";
import { DnsClient } from "../../packages/cli/src/check-dns";
import { checkHost } from "../../packages/cli/src/check-status";
import { AuthoritativeDns } from "../support/dns-server";
import { FakeSsm } from "../support/fake-aws";
import { requireTools } from "../support/tools";

const BIG = "x".repeat(3000);
const ZONE = [
  "$ORIGIN client.test.",
  "$TTL 300",
  "@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300",
  "@ IN NS ns1",
  "ns1 IN A 192.0.2.53",
  "@ IN MX 10 mail",
  "@ IN TXT \"v=spf1 mx -all\"",
  "mail IN A 192.0.2.25",
  "mail IN CAA 0 issue \"letsencrypt.org\"",
  `big IN TXT ${BIG.match(/.{1,255}/g)!.map((s) => `"${s}"`).join(" ")}`,
  "_25._tcp.mail IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
  "_imaps._tcp IN SRV 0 1 993 mail",
  "mta-sts IN CNAME mail",
  "",
].join("\n");
const REVERSE = "$ORIGIN 2.0.192.in-addr.arpa.\n$TTL 300\n@ IN SOA ns1.client.test. h.client.test. 1 7200 3600 1209600 300\n@ IN NS ns1.client.test.\n25 IN PTR mail.client.test.\n";

describe("the DNS client against Knot", () => {
  requireTools("knotd", "dig");
  let server: AuthoritativeDns;
  let dns: DnsClient;
  beforeAll(async () => {
    server = await AuthoritativeDns.start({ "client.test": ZONE, "2.0.192.in-addr.arpa": REVERSE });
    dns = new DnsClient({ host: "127.0.0.1", port: server.port }, 3000);
  });
  afterAll(() => server?.stop());

  test("each type in the form the record comparison uses", async () => {
    expect(await dns.query("client.test", "MX")).toEqual({ rcode: "NOERROR", values: ["10 mail.client.test"] });
    expect(await dns.query("CLIENT.test.", "TXT")).toEqual({ rcode: "NOERROR", values: ["v=spf1 mx -all"] });
    expect(await dns.query("mail.client.test", "CAA")).toEqual({ rcode: "NOERROR", values: ['0 issue "letsencrypt.org"'] });
    expect(await dns.query("_25._tcp.mail.client.test", "TLSA")).toEqual({ rcode: "NOERROR", values: ["3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"] });
    expect(await dns.query("_imaps._tcp.client.test", "SRV")).toEqual({ rcode: "NOERROR", values: ["0 1 993 mail.client.test"] });
    expect(await dns.query("25.2.0.192.in-addr.arpa", "PTR")).toEqual({ rcode: "NOERROR", values: ["mail.client.test"] });
    expect(await dns.query("mta-sts.client.test", "CNAME")).toEqual({ rcode: "NOERROR", values: ["mail.client.test"] });
    // Through the CNAME: the A alone, not the alias on the way.
    expect(await dns.query("mta-sts.client.test", "A")).toEqual({ rcode: "NOERROR", values: ["192.0.2.25"] });
  });

  test("an answer too large for UDP is fetched again over TCP, whole", async () => {
    expect(await dns.query("big.client.test", "TXT")).toEqual({ rcode: "NOERROR", values: [BIG] });
  });

  test("a missing name, a missing type and a zone the server does not serve are told apart", async () => {
    expect(await dns.query("nope.client.test", "TXT")).toEqual({ rcode: "NXDOMAIN", values: [] });
    expect(await dns.query("mail.client.test", "MX")).toEqual({ rcode: "NOERROR", values: [] });
    expect(await dns.query("example.net", "A")).toEqual({ rcode: "REFUSED", values: [] });
  });

  test("a server that never answers is a TIMEOUT, not an empty answer", async () => {
    const silent: Socket = createSocket("udp4");
    await new Promise<void>((r) => silent.bind(0, "127.0.0.1", r));
    try {
      const quiet = new DnsClient({ host: "127.0.0.1", port: (silent.address() as AddressInfo).port }, 200);
      expect(await quiet.query("client.test", "MX")).toEqual({ rcode: "TIMEOUT", values: [] });
    } finally {
      silent.close();
    }
  });
});

describe("the host's reports from the SSM stand-in", () => {
  const ssm = new FakeSsm();
  const saved = { ...process.env };
  const path = "/mailstack/test/mail";
  const sha = "ab".repeat(32);
  beforeAll(async () => {
    await ssm.start();
    Object.assign(process.env, {
      AWS_REGION: "us-east-1",
      AWS_ENDPOINT_URL_SSM: ssm.endpoint,
      AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE",
      AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
      AWS_CONFIG_FILE: "/nonexistent",
      AWS_SHARED_CREDENTIALS_FILE: "/nonexistent",
      AWS_EC2_METADATA_DISABLED: "true",
    });
  });
  afterAll(async () => {
    process.env = saved;
    await ssm.stop();
  });

  test("both reports read with one call below <path>/status, and only there", async () => {
    ssm.parameters.set(`${path}/status/host-bundle`, JSON.stringify({ running: sha, attempted: sha, result: "applied", reason: null, at: "2026-01-01T00:00:00Z" }));
    ssm.parameters.set(`${path}/status/health`, JSON.stringify({ at: new Date().toISOString(), queueActive: 1, queueDeferred: 0 }));
    ssm.parameters.set(`${path}/host-bundle`, "the pointer: not a report");
    ssm.requests.length = 0;
    const verdicts = await checkHost(path, sha, 5000, () => new Date());
    expect(verdicts.map((v) => [v.id, v.status])).toEqual([
      ["host:bundle", "ok"],
      ["host:health", "ok"],
      ["host:queue", "ok"],
    ]);
    expect(ssm.requests.map((r) => [r.target, r.body.Path])).toEqual([["AmazonSSM.GetParametersByPath", `${path}/status`]]);
  });

  test("no reports yet: both fail, naming the parameters", async () => {
    ssm.parameters.clear();
    const verdicts = await checkHost(path, sha, 5000, () => new Date());
    expect(verdicts.map((v) => v.found)).toEqual([`no report in ${path}/status/host-bundle yet (the host has not run its first sync)`, `no report in ${path}/status/health (is the metrics timer running?)`]);
  });

  test("access denied and a missing region are one failing line with the cause", async () => {
    ssm.refuse = true;
    try {
      const [denied] = await checkHost(path, sha, 5000, () => new Date());
      expect(denied).toMatchObject({ id: "host:reports", status: "fail", found: expect.stringMatching(/^could not read \/mailstack\/test\/mail\/status\/ from SSM: AccessDeniedException: not authorized/) });
    } finally {
      ssm.refuse = false;
    }
    delete process.env.AWS_REGION;
    try {
      const [noRegion] = await checkHost(path, sha, 5000, () => new Date());
      expect(noRegion.found).toMatch(/set AWS_REGION to the stack's region$/);
    } finally {
      process.env.AWS_REGION = "us-east-1";
    }
  });
});
