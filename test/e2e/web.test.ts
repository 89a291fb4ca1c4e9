/**
 * What nginx serves on 443, with Debian's nginx running the rendered site in the stack's
 * namespace (test/support/stack.ts): the MTA-STS policy and the mail clients' settings, each
 * fetched over TLS verified against the stack's certificate for the name a client uses, and
 * nothing else.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type MailConfigInput, mtaStsPolicy, txtValue } from "@mailstack/core";
import { fullConfig } from "../support/fixtures";
import { type HttpResponse, TestStack } from "../support/stack";
import { requireRoot, requireTools, runOk } from "../support/tools";

const POLICY_PATH = "/.well-known/mta-sts.txt";

/** The fields of an MTA-STS policy (RFC 8461 §3.2); throws where the text breaks its grammar. */
function parsePolicy(text: string): { version: string; mode: string; mx: string[]; maxAge: number } {
  const fields: [string, string][] = text
    .split(/\r?\n/)
    .filter((l) => l !== "")
    .map((l) => {
      const m = l.match(/^([A-Za-z0-9_]+):[ \t]*(\S(?:.*\S)?)[ \t]*$/);
      if (!m) throw new Error(`not a policy field: ${JSON.stringify(l)}`);
      return [m[1], m[2]];
    });
  const one = (key: string) => {
    const values = fields.filter(([k]) => k === key).map(([, v]) => v);
    if (values.length !== 1) throw new Error(`${key} appears ${values.length} times`);
    return values[0];
  };
  const maxAge = one("max_age");
  if (!/^\d{1,10}$/.test(maxAge) || Number(maxAge) > 31557600) throw new Error(`max_age ${maxAge} is out of range`);
  return { version: one("version"), mode: one("mode"), mx: fields.filter(([k]) => k === "mx").map(([, v]) => v), maxAge: Number(maxAge) };
}

/** Whether an MX host name matches a policy's mx pattern (RFC 8461 §4.1: "*." covers one label). */
const mxMatches = (host: string, pattern: string) =>
  pattern.startsWith("*.") ? host.split(".").slice(1).join(".") === pattern.slice(2) : host === pattern;

/** The string value of an XPath 1.0 expression over XML, by libxml2 (which also checks it is well-formed). */
const xpath = (xml: string, expression: string): string => runOk("xmllint", ["--xpath", `string(${expression})`, "-"], { input: xml }).stdout.trim();

/** For each element `path` selects: the string values of `fields` below it, joined by spaces. */
function each(xml: string, path: string, fields: string[]): string[] {
  const n = Number(xpath(xml, `count(${path})`));
  return Array.from({ length: n }, (_, i) => fields.map((f) => xpath(xml, `(${path})[${i + 1}]/${f}`)).join(" "));
}

const contentType = (r: HttpResponse) => String(r.headers?.["content-type"] ?? "");

describe("nginx on 443: MTA-STS policy and mail-client settings", () => {
  requireTools("nginx", "xmllint", "openssl", "ip");
  requireRoot("the stack runs in a network namespace of its own");

  const input: MailConfigInput = { ...fullConfig(), secondaryMx: [{ host: "backup-mx.example.net", priority: 20 }] };
  let stack: TestStack;
  let ca: string;
  beforeAll(async () => {
    stack = await TestStack.start(input, { variant: "unfiltered" });
    ca = readFileSync(stack.paths.tlsCert, "utf8");
  }, 180000);
  afterAll(() => stack?.stop());

  const get = (servername: string, path: string, options: { method?: string; body?: string; plain?: boolean } = {}) =>
    stack.http({ servername, path, ca, ...options });

  test("nginx -t accepts the running configuration, and nginx logged no warning", () => {
    const r = stack.exec("nginx", ["-t", "-c", stack.nginxConfig]);
    expect(r.stderr).toMatch(/test is successful/);
    expect(r.stderr).not.toMatch(/\[(warn|emerg|alert|crit)\]/);
    expect(stack.log("nginx")).not.toMatch(/\[(warn|emerg|alert|crit|error)\]/);
  });

  test("each domain's mta-sts name serves exactly the core's policy as text/plain, with the id its TXT record announces", async () => {
    for (const domain of stack.config.domains) {
      const r = await get(`mta-sts.${domain}`, POLICY_PATH);
      expect({ domain, status: r.status, error: r.error }).toEqual({ domain, status: 200, error: undefined });
      expect(contentType(r)).toMatch(/^text\/plain(;|$)/);
      expect(r.body).toBe(mtaStsPolicy(stack.config));

      const txt = stack.records.filter((rec) => rec.type === "TXT" && rec.name === `_mta-sts.${domain}`).map((rec) => txtValue(rec.content));
      expect(txt).toHaveLength(1);
      const id = txt[0].match(/^v=STSv1; *id=([A-Za-z0-9]{1,32})$/)?.[1];
      expect(id).toBe(createHash("sha256").update(r.body!).digest("hex").slice(0, 20));
    }
  });

  test("the served policy parses per RFC 8461 and its mx patterns cover every MX record", async () => {
    const policy = parsePolicy((await get(`mta-sts.${stack.config.domain}`, POLICY_PATH)).body!);
    expect(policy).toMatchObject({ version: "STSv1", mode: "enforce" });
    expect(policy.maxAge).toBeGreaterThanOrEqual(86400);
    const mx = stack.records.filter((r) => r.type === "MX").map((r) => ({ domain: r.name, host: r.content.replace(/\.$/, "") }));
    expect(new Set(mx.map((m) => m.domain))).toEqual(new Set(stack.config.domains));
    expect(mx.map((m) => m.host)).toContain("backup-mx.example.net");
    for (const m of mx) expect({ ...m, covered: policy.mx.some((p) => mxMatches(m.host, p)) }).toEqual({ ...m, covered: true });
  });

  test("Thunderbird's autoconfig is well-formed XML naming the host's IMAP, POP3 and submission ports", async () => {
    const host = stack.config.hostname;
    for (const domain of stack.config.domains) {
      const r = await get(`autoconfig.${domain}`, `/mail/config-v1.1.xml?emailaddress=alice%40${domain}`);
      expect({ domain, status: r.status }).toEqual({ domain, status: 200 });
      expect(contentType(r)).toMatch(/^(text|application)\/xml(;|$)/);
      const servers = (tag: string) => each(r.body!, `/clientConfig/emailProvider/${tag}`, ["@type", "hostname", "port", "socketType", "username"]);
      expect(servers("incomingServer").sort()).toEqual([`imap ${host} 993 SSL %EMAILADDRESS%`, `pop3 ${host} 995 SSL %EMAILADDRESS%`]);
      expect(servers("outgoingServer").sort()).toEqual([`smtp ${host} 465 SSL %EMAILADDRESS%`, `smtp ${host} 587 STARTTLS %EMAILADDRESS%`]);
      expect(each(r.body!, "/clientConfig/emailProvider/domain", ["."]).sort()).toEqual([...stack.config.domains].sort());
    }
  });

  test.each(["/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"])("Outlook's POST to %s is answered 200 with the settings XML", async (path) => {
    const request = [
      '<?xml version="1.0" encoding="utf-8"?>',
      '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">',
      `<Request><EMailAddress>alice@${stack.config.domain}</EMailAddress>`,
      "<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>",
      "</Request></Autodiscover>",
    ].join("");
    const r = await get(`autodiscover.${stack.config.domain}`, path, { method: "POST", body: request });
    expect({ status: r.status, error: r.error }).toEqual({ status: 200, error: undefined });
    expect(contentType(r)).toMatch(/^(text|application)\/xml(;|$)/);
    const el = (name: string) => `*[local-name()="${name}"]`;
    const protocols = each(r.body!, `/${el("Autodiscover")}/${el("Response")}/${el("Account")}/${el("Protocol")}`, ["Type", "Server", "Port", "Encryption"].map(el));
    const host = stack.config.hostname;
    expect(protocols.sort()).toEqual([`IMAP ${host} 993 SSL`, `POP3 ${host} 995 SSL`, `SMTP ${host} 465 SSL`]);
  });

  test("every other path is 404, whatever the name", async () => {
    const paths = ["/", "/index.html", "/.well-known/", "/.well-known/acme-challenge/x", "/.well-known/mta-sts.txt.bak", "/mail/", "/mail/config-v1.1.xml~", "/autodiscover/", "/www/.well-known/mta-sts.txt", "/certificate-names", "/tls/key.pem", "/users"];
    const requests = [`mta-sts.${stack.config.domain}`, `autoconfig.${stack.config.domain}`, stack.config.hostname].flatMap((servername) => paths.map((path) => ({ servername, path, ca })));
    const responses = await stack.httpEach(requests);
    expect(responses.map((r, i) => `${requests[i].servername}${requests[i].path} ${r.status}`)).toEqual(requests.map((r) => `${r.servername}${r.path} 404`));
    // A path that climbs above the root is refused before any location is looked at.
    expect((await get(stack.config.hostname, "/../tls/key.pem")).status).toBe(400);
  });

  test("plain HTTP on 443 gets no file", async () => {
    const r = await get(`mta-sts.${stack.config.domain}`, POLICY_PATH, { plain: true });
    expect(r.status).toBe(400);
    expect(r.body).not.toContain("STSv1");
    expect(r.body).toMatch(/plain HTTP request was sent to HTTPS port/);
  });

  describe("protocol versions", () => {
    /** openssl s_client at SECLEVEL=0 (Debian's default level refuses TLS < 1.2 by itself), with its trace. */
    const handshake = (version: string, ciphers = "DEFAULT") => {
      const args = ["-connect", "127.0.0.1:443", "-servername", `mta-sts.${stack.config.domain}`, "-trace", "-ign_eof", "-cipher", `${ciphers}@SECLEVEL=0`, `-${version}`];
      const r = stack.exec("timeout", ["20", "openssl", "s_client", ...args], `GET ${POLICY_PATH} HTTP/1.0\r\nHost: mta-sts.${stack.config.domain}\r\n\r\n`);
      const out = `${r.stdout}\n${r.stderr}`;
      return {
        offered: out.match(/ClientHello, Length=\d+\s+client_version=(0x[0-9a-f]+)/)?.[1],
        serverHello: /ServerHello/.test(out),
        negotiated: /^New, \(NONE\), Cipher is \(NONE\)/m.test(out) ? "(NONE)" : out.match(/^\s+Protocol\s*: (TLSv1(?:\.[1-3])?)$/m)?.[1],
        served: out.includes("version: STSv1"),
      };
    };

    test.each([["tls1", "0x301"], ["tls1_1", "0x302"]])("-%s is refused by nginx", async (version, hello) => {
      const refusals = () => (stack.log("nginx").match(/unsupported protocol/g) ?? []).length;
      const before = refusals();
      expect(handshake(version)).toEqual({ offered: hello, serverHello: false, negotiated: "(NONE)", served: false });
      // The server, not the client, said no (tls.test.ts shows this client completing TLS 1.0 and 1.1 where allowed).
      await stack.until("nginx to log the refused handshake", () => refusals() > before, 10000);
    });

    test.each([["tls1_2", "TLSv1.2"], ["tls1_3", "TLSv1.3"]])("-%s is accepted (control)", (version, protocol) => {
      expect(handshake(version)).toMatchObject({ serverHello: true, negotiated: protocol, served: true });
    });

    test("TLS 1.2 suites outside the mail ports' intermediate list are refused (CBC), those in it accepted", async () => {
      const refusals = () => (stack.log("nginx").match(/no shared cipher/g) ?? []).length;
      const before = refusals();
      expect(handshake("tls1_2", "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384")).toMatchObject({ serverHello: false, negotiated: "(NONE)", served: false });
      await stack.until("nginx to log the refused suites", () => refusals() > before, 10000);
      expect(handshake("tls1_2", "ECDHE-ECDSA-AES128-GCM-SHA256")).toMatchObject({ serverHello: true, negotiated: "TLSv1.2", served: true });
    });
  });

  test("a runtime file changed by the sync is served at once, without a reload", async () => {
    const file = join(stack.paths.runtime, "www", POLICY_PATH);
    const changed = mtaStsPolicy(stack.config).replace(/max_age: \d+/, "max_age: 60");
    writeFileSync(file, changed);
    expect((await get(`mta-sts.${stack.config.domain}`, POLICY_PATH)).body).toBe(changed);
  });
});
