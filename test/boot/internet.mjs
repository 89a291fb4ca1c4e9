// The boot test's "internet": stand-ins for everything outside the mail host, run by the
// harness inside the network namespace that is the booted container's gateway.
//
// usage: ip netns exec msb-net node test/boot/internet.mjs CONFIG.json
//
//   IMDSv2   http://<imds.address>:80          tokens required, the instance role's credentials
//   SSM      https://<ssm.address>:443         AWS JSON 1.1: GetParametersByPath (paginated),
//                                              GetParameter, GetParameters, PutParameter; refuses
//                                              connections (does not listen) while down
//   S3       https://<s3.address>:443          s3rver, path-style and virtual-host-style, the latter
//                                              as <bucket>.s3.<region>.amazonaws.com (boto3) or
//                                              <bucket>.s3.dualstack.<region>.amazonaws.com: restic
//                                              0.14 (minio-go) turns s3:https://s3.<region>.amazonaws
//                                              .com/<bucket>/... into the dualstack name. The host must
//                                              resolve the names it uses to s3.address and the
//                                              certificate must name them. config.s3.objects
//                                              ([{key, body}], body UTF-8) are in the bucket from the
//                                              start.
//   ACME     https://<acme.address>:443        a proxy to Debian's pebble on 127.0.0.1:14000
//                                              (/directory is pebble's /dir); pebble validates
//                                              HTTP-01 through the DNS below
//   DNS      <dns.address>:53 UDP and TCP      knotd, authoritative for the given zone files
//   Logs     https://<logs.address>:443        CloudWatch Logs, AWS JSON 1.1: CreateLogStream (in the
//                                              groups logs.groups names), PutLogEvents, refused when
//                                              it breaks PutLogEvents' limits
//   Metrics  https://<monitoring.address>:443  CloudWatch's PutMetricData, query protocol or AWS JSON 1.0
//
// SSM and S3 answer signed requests only with the role's session token (imds.credentials.Token)
// beside them, as AWS does for temporary credentials: clients must take the role's credentials
// from IMDS. Only s3rver checks signatures (SSM checks the key id only). Each section may name a
// "port" other than the default (imds.port, ssm.port, s3.port, acme.port, dns.port).
//
// Control on stdin, one JSON object a line:
//   {"cmd":"ssm-up"}  {"cmd":"ssm-down"}
//   {"cmd":"ssm-parameters","parameters":[{Name,Type,Value}]}  replaces the whole set
//   {"cmd":"ssm-put","parameters":[{Name,Type,Value}]}  adds or overwrites just these
//   {"cmd":"ssm-get","name":"/x/y"}
//   {"cmd":"s3-put","key":"a/b.json","body":"UTF-8 text"}  an object in config.s3.bucket
//   {"cmd":"acme-roots"}  {"cmd":"stop"}
// Events on stdout, one JSON object a line (nothing else is written there):
//   {"event":"ready"}  once every service listens (SSM only if it is up)
//   {"event":"request","service":"imds"|"ssm"|"s3"|"acme","method","path","status",...}
//       imds adds "token" (a valid session token came with the request), ssm adds "target",
//       s3 adds "host" (its path always starts with the bucket, whichever style was used)
//   {"event":"logs-put","group","stream","messages":[...]}  a PutLogEvents accepted
//   {"event":"logs-refused","reason"}  a PutLogEvents refused for breaking a limit
//   {"event":"metrics-put","namespace","data":[{name,dimensions,value,unit}]}  a PutMetricData accepted
//   {"event":"error","service","message"}
//   {"event":"ssm-put","name","value","type"}  a PutParameter SSM accepted (after its request event)
//   {"event":"ssm-up"} {"event":"ssm-down"} {"event":"ssm-parameters","count"}  acknowledgements,
//   {"event":"ssm-put-done","count"} (the parameters in the command) {"event":"s3-put-done","key"}
//   {"event":"ssm-value","name","value"}  the answer to ssm-get: the plain value, or null
//   {"event":"acme-roots","root":"PEM","intermediate":"PEM"}
//   {"event":"stopped"}  just before a clean exit
// A closed stdin (the harness is gone), SIGTERM or SIGINT stop everything as "stop" does.
// Children (pebble, knotd) get SIGKILL from the kernel should this process die without
// cleaning up (setpriv --pdeathsig). Their output goes to <dir>/pebble.log and <dir>/knot.log.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Resolver } from "node:dns/promises";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { createRequire } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { clearTimeout, setTimeout } from "node:timers";
import { URL } from "node:url";
import { logBatchProblems, metricDataAnswer, parseMetricData } from "../support/cloudwatch-wire.ts";

const require = createRequire(import.meta.url);
const S3rver = require("s3rver");
const S3Object = require("s3rver/lib/models/object");

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const dir = config.dir;
mkdirSync(dir, { recursive: true });
const tls = { cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) };
const ACCOUNT = "123456789012";
const PAGE = 10; // GetParametersByPath returns at most 10 parameters per call.
const PEBBLE = { listen: "127.0.0.1:14000", management: "127.0.0.1:15000" };

// --- stdout: events only -------------------------------------------------------------------
let stdoutGone = false;
function emit(event) {
  if (stdoutGone) return;
  try {
    process.stdout.write(JSON.stringify(event) + "\n");
  } catch {
    stdoutGone = true;
  }
}
process.stdout.on("error", () => {
  stdoutGone = true;
  void shutdown(1);
});
const log = (...args) => process.stderr.write(`internet: ${args.join(" ")}\n`);
const fail = (service, e) => emit({ event: "error", service, message: String(e?.stack ?? e?.message ?? e) });

/** Listens on host:port; rejects on EADDRINUSE and the like. */
function listen(server, port, host) {
  return new Promise((resolve, reject) => {
    const onError = (e) => reject(e);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      server.on("error", (e) => fail("listen", e));
      resolve();
    });
  });
}

function closeServer(server) {
  if (!server || !server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections?.();
  });
}

/** Reads a stream (a request's body, say) to its end. */
function body(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** `2024-01-02T03:04:05Z`: AWS's timestamps, without milliseconds. */
const awsTime = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

// --- children ------------------------------------------------------------------------------
const children = new Map(); // name -> ChildProcess
let stopping = null;
const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));

function startChild(name, command, args, env = {}) {
  const logPath = join(dir, `${name}.log`);
  const fd = openSync(logPath, "a");
  const [cmd, argv] = SETPRIV ? [SETPRIV, ["--pdeathsig", "SIGKILL", "--", command, ...args]] : [command, args];
  const child = spawn(cmd, argv, { stdio: ["ignore", fd, fd], env: { ...process.env, ...env } });
  closeSync(fd);
  children.set(name, child);
  child.on("error", (e) => fail(name, e));
  child.on("exit", (code, signal) => {
    if (!stopping) fail(name, `${command} exited (${signal ?? code}); last lines of ${logPath}:\n${tail(logPath)}`);
  });
  return child;
}

function tail(path, lines = 20) {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

async function until(what, check, child, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`${what}: the process exited`);
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// --- IMDSv2 --------------------------------------------------------------------------------
const imdsConfig = config.imds;
const tokens = new Map(); // token -> expiry (ms)

function imdsRoutes() {
  const { instanceId, region, availabilityZone, role, credentials } = imdsConfig;
  const now = Date.now();
  const json = (o) => ({ type: "text/plain", text: JSON.stringify(o, null, 2) });
  const text = (t) => ({ type: "text/plain", text: t });
  const roleCredentials = () =>
    json({
      Code: "Success",
      LastUpdated: awsTime(now),
      Type: "AWS-HMAC",
      AccessKeyId: credentials.AccessKeyId,
      SecretAccessKey: credentials.SecretAccessKey,
      Token: credentials.Token,
      Expiration: awsTime(now + 6 * 3600 * 1000),
    });
  return {
    "/latest/meta-data/": () => text(["ami-id", "iam/", "instance-id", "instance-type", "placement/"].join("\n")),
    "/latest/meta-data/ami-id": () => text(imdsConfig.imageId ?? "ami-0123456789abcdef0"),
    "/latest/meta-data/instance-id": () => text(instanceId),
    "/latest/meta-data/instance-type": () => text(imdsConfig.instanceType ?? "t3.small"),
    "/latest/meta-data/placement/": () => text("availability-zone\nregion"),
    "/latest/meta-data/placement/region": () => text(region),
    "/latest/meta-data/placement/availability-zone": () => text(availabilityZone),
    "/latest/meta-data/iam/": () => text("info\nsecurity-credentials/"),
    "/latest/meta-data/iam/info": () =>
      json({
        Code: "Success",
        LastUpdated: awsTime(now),
        InstanceProfileArn: `arn:aws:iam::${ACCOUNT}:instance-profile/${role}`,
        InstanceProfileId: "AIPAEXAMPLEPROFILEID0",
      }),
    "/latest/meta-data/iam/security-credentials": () => text(role),
    "/latest/meta-data/iam/security-credentials/": () => text(role),
    [`/latest/meta-data/iam/security-credentials/${role}`]: roleCredentials,
    [`/latest/meta-data/iam/security-credentials/${role}/`]: roleCredentials,
    "/latest/dynamic/instance-identity/document": () =>
      json({
        accountId: ACCOUNT,
        architecture: "x86_64",
        availabilityZone,
        billingProducts: null,
        devpayProductCodes: null,
        marketplaceProductCodes: null,
        imageId: imdsConfig.imageId ?? "ami-0123456789abcdef0",
        instanceId,
        instanceType: imdsConfig.instanceType ?? "t3.small",
        kernelId: null,
        pendingTime: awsTime(startedAt),
        privateIp: imdsConfig.privateIp ?? null,
        ramdiskId: null,
        region,
        version: "2017-09-30",
      }),
  };
}
const startedAt = Date.now();

function imdsHandler(req, res) {
  req.resume();
  const path = new URL(req.url, "http://imds").pathname;
  const presented = req.headers["x-aws-ec2-metadata-token"];
  const token = typeof presented === "string" && (tokens.get(presented) ?? 0) > Date.now();
  const send = (status, text, headers = {}) => {
    res.writeHead(status, { "Content-Type": "text/plain", "Content-Length": Buffer.byteLength(text), Server: "EC2ws", ...headers });
    res.end(req.method === "HEAD" ? undefined : text);
    emit({ event: "request", service: "imds", method: req.method, path, status, token });
  };
  if (path === "/latest/api/token") {
    if (req.method !== "PUT") return send(405, "Method Not Allowed");
    // IMDS refuses tokens to requests that went through a proxy.
    if (req.headers["x-forwarded-for"]) return send(403, "Forbidden");
    const ttl = Number(req.headers["x-aws-ec2-metadata-token-ttl-seconds"]);
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21600) return send(400, "Bad Request");
    const issued = `AQAEA${randomBytes(36).toString("base64url")}==`;
    tokens.set(issued, Date.now() + ttl * 1000);
    return send(200, issued, { "X-aws-ec2-metadata-token-ttl-seconds": String(ttl) });
  }
  if (req.method !== "GET" && req.method !== "HEAD") return send(405, "Method Not Allowed");
  // HttpTokens: required. A request without a valid session token is refused, whatever it asks.
  if (!token) return send(401, "Unauthorized");
  const route = imdsRoutes()[path];
  if (!route) return send(404, "Not Found");
  const { type, text } = route();
  send(200, text, { "Content-Type": type });
}

// --- SSM -----------------------------------------------------------------------------------
const ssmConfig = config.ssm;
let ssmParameters = new Map(); // name -> { Type, Value, Version, LastModifiedDate }
let ssmServer = null;

/** The harness's parameters, all checked before any is stored. */
function checkParameters(list) {
  for (const p of list ?? []) {
    if (typeof p?.Name !== "string" || typeof p?.Value !== "string") throw new Error(`bad parameter ${JSON.stringify(p)}`);
  }
  return list ?? [];
}

// A parameter set again unchanged (ssm-parameters repeats the whole set) is no new version.
function parameterEntry(p, before) {
  const same = before && before.Value === p.Value && before.Type === (p.Type ?? "SecureString");
  return {
    Type: p.Type ?? "SecureString",
    Value: p.Value,
    Version: same ? before.Version : (before?.Version ?? 0) + 1,
    LastModifiedDate: same ? before.LastModifiedDate : Date.now() / 1000,
  };
}

function setParameters(list) {
  const old = ssmParameters;
  const next = new Map();
  for (const p of checkParameters(list)) next.set(p.Name, parameterEntry(p, old.get(p.Name)));
  ssmParameters = next;
}

function putParameters(list) {
  const checked = checkParameters(list);
  for (const p of checked) ssmParameters.set(p.Name, parameterEntry(p, ssmParameters.get(p.Name)));
  return checked.length;
}

function ssmParameter(name, decrypt) {
  const p = ssmParameters.get(name);
  return {
    Name: name,
    Type: p.Type,
    // Without WithDecryption, SSM returns the KMS ciphertext of a SecureString.
    Value: p.Type === "SecureString" && !decrypt ? Buffer.from(`ciphertext:${name}`).toString("base64") : p.Value,
    Version: p.Version,
    LastModifiedDate: p.LastModifiedDate,
    ARN: `arn:aws:ssm:${imdsConfig.region}:${ACCOUNT}:parameter${name}`,
    DataType: "text",
  };
}

async function ssmHandler(req, res) {
  const path = new URL(req.url, "https://ssm").pathname;
  const target = String(req.headers["x-amz-target"] ?? "");
  const raw = await body(req).catch(() => Buffer.alloc(0));
  const reply = (status, out) => {
    const text = JSON.stringify(out);
    res.writeHead(status, {
      "Content-Type": "application/x-amz-json-1.1",
      "Content-Length": Buffer.byteLength(text),
      "x-amzn-RequestId": "00000000-0000-0000-0000-000000000000",
    });
    res.end(text);
    emit({ event: "request", service: "ssm", method: req.method, path, status, target });
  };
  const error = (status, type, message) => reply(status, { __type: type, message });
  if (req.method !== "POST") return error(400, "InvalidAction", "POST only");
  // The role's credentials, as IMDS hands them out, signed into the request (the signature
  // itself is not checked).
  const { AccessKeyId, Token } = imdsConfig.credentials;
  const auth = String(req.headers.authorization ?? "");
  if (!auth.startsWith("AWS4-HMAC-SHA256 ") || !auth.includes(`Credential=${AccessKeyId}/`)) return error(400, "UnrecognizedClientException", "The security token included in the request is invalid.");
  if (Token && req.headers["x-amz-security-token"] !== Token) return error(400, "UnrecognizedClientException", "The security token included in the request is invalid.");
  let input;
  try {
    input = JSON.parse(raw.toString("utf8") || "{}");
  } catch {
    return error(400, "SerializationException", "body is not JSON");
  }
  switch (target) {
    case "AmazonSSM.GetParametersByPath": {
      if (typeof input.Path !== "string" || !input.Path.startsWith("/")) return error(400, "ValidationException", "Path must start with /");
      if (input.MaxResults !== undefined && !(Number.isInteger(input.MaxResults) && input.MaxResults >= 1 && input.MaxResults <= PAGE))
        return error(400, "ValidationException", `1 validation error detected: Value '${input.MaxResults}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to ${PAGE}`);
      const base = input.Path.replace(/\/$/, "") + "/";
      const names = [...ssmParameters.keys()].filter((n) => n.startsWith(base) && (input.Recursive || !n.slice(base.length).includes("/"))).sort();
      const start = input.NextToken ? Number(Buffer.from(input.NextToken, "base64").toString("utf8").replace(/^offset:/, "")) : 0;
      if (!Number.isInteger(start) || start < 0) return error(400, "InvalidNextToken", "The specified token is invalid.");
      const size = input.MaxResults ?? PAGE;
      const out = { Parameters: names.slice(start, start + size).map((n) => ssmParameter(n, input.WithDecryption)) };
      if (start + size < names.length) out.NextToken = Buffer.from(`offset:${start + size}`).toString("base64");
      return reply(200, out);
    }
    case "AmazonSSM.GetParameter": {
      if (!ssmParameters.has(input.Name)) return error(400, "ParameterNotFound", "");
      return reply(200, { Parameter: ssmParameter(input.Name, input.WithDecryption) });
    }
    case "AmazonSSM.PutParameter": {
      if (typeof input.Name !== "string" || !input.Name) return error(400, "ValidationException", "Name is required");
      if (typeof input.Value !== "string") return error(400, "ValidationException", "Value is required");
      const before = ssmParameters.get(input.Name);
      // As SSM: a new parameter needs a type, an overwrite without one keeps the old one.
      const type = input.Type ?? before?.Type;
      if (type !== "String" && type !== "SecureString")
        return error(400, "ValidationException", type === undefined ? "A parameter type is required when you create a parameter." : `Type must be String or SecureString, not ${type}`);
      if (before && input.Overwrite !== true)
        return error(400, "ParameterAlreadyExists", "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.");
      // Unlike the harness's settings, every accepted PutParameter is a new version, as in SSM.
      const Version = (before?.Version ?? 0) + 1;
      ssmParameters.set(input.Name, { Type: type, Value: input.Value, Version, LastModifiedDate: Date.now() / 1000 });
      reply(200, { Version, Tier: "Standard" });
      return emit({ event: "ssm-put", name: input.Name, value: input.Value, type });
    }
    case "AmazonSSM.GetParameters": {
      const names = Array.isArray(input.Names) ? input.Names : [];
      if (names.length < 1 || names.length > 10) return error(400, "ValidationException", "Names must hold 1 to 10 names");
      return reply(200, {
        Parameters: names.filter((n) => ssmParameters.has(n)).map((n) => ssmParameter(n, input.WithDecryption)),
        InvalidParameters: names.filter((n) => !ssmParameters.has(n)),
      });
    }
    default:
      return error(400, "UnknownOperationException", target);
  }
}

async function ssmUp() {
  if (ssmServer) return;
  const server = https.createServer(tls, (req, res) => ssmHandler(req, res).catch((e) => fail("ssm", e)));
  server.on("tlsClientError", () => {}); // a client that does not trust the CA; its business
  ssmServer = server;
  try {
    await listen(server, ssmConfig.port ?? 443, ssmConfig.address);
  } catch (e) {
    ssmServer = null;
    throw e;
  }
}

async function ssmDown() {
  const server = ssmServer;
  ssmServer = null;
  await closeServer(server);
}

// --- CloudWatch Logs and CloudWatch --------------------------------------------------------
/** Whether a request is signed with the role's credentials and session token, as SSM checks. */
function signedByRole(req) {
  const { AccessKeyId, Token } = imdsConfig.credentials;
  const auth = String(req.headers.authorization ?? "");
  return auth.startsWith("AWS4-HMAC-SHA256 ") && auth.includes(`Credential=${AccessKeyId}/`) && (!Token || req.headers["x-amz-security-token"] === Token);
}

const logStreams = new Map(); // "group stream" -> number of events

async function logsHandler(req, res) {
  const target = String(req.headers["x-amz-target"] ?? "");
  const raw = await body(req).catch(() => Buffer.alloc(0));
  const reply = (status, out) => {
    const text = JSON.stringify(out);
    res.writeHead(status, { "Content-Type": "application/x-amz-json-1.1", "Content-Length": Buffer.byteLength(text), "x-amzn-RequestId": "0" });
    res.end(text);
    emit({ event: "request", service: "logs", method: req.method, path: "/", status, target });
  };
  const error = (type, message) => reply(400, { __type: type, message });
  if (!signedByRole(req)) return error("UnrecognizedClientException", "The security token included in the request is invalid.");
  let input;
  try {
    input = JSON.parse(raw.toString("utf8") || "{}");
  } catch {
    return error("SerializationException", "body is not JSON");
  }
  const key = `${input.logGroupName} ${input.logStreamName}`;
  if (target === "Logs_20140328.CreateLogStream") {
    if (!(config.logs.groups ?? []).includes(input.logGroupName)) return error("ResourceNotFoundException", "The specified log group does not exist.");
    if (logStreams.has(key)) return error("ResourceAlreadyExistsException", "The specified log stream already exists");
    logStreams.set(key, 0);
    return reply(200, {});
  }
  if (target !== "Logs_20140328.PutLogEvents") return error("UnknownOperationException", target);
  if (!logStreams.has(key)) return error("ResourceNotFoundException", "The specified log stream does not exist.");
  const events = Array.isArray(input.logEvents) ? input.logEvents : [];
  const reason = logBatchProblems(events).problems.join(", ");
  if (reason) {
    emit({ event: "logs-refused", reason });
    return error("InvalidParameterException", reason);
  }
  logStreams.set(key, logStreams.get(key) + events.length);
  reply(200, { nextSequenceToken: "0" });
  emit({ event: "logs-put", group: input.logGroupName, stream: input.logStreamName, messages: events.map((e) => e.message) });
}

async function monitoringHandler(req, res) {
  const target = String(req.headers["x-amz-target"] ?? "");
  const request = parseMetricData(target, (await body(req).catch(() => Buffer.alloc(0))).toString("utf8"));
  const reply = (status, code) => {
    const { contentType, body: text } = metricDataAnswer(request.json, code);
    res.writeHead(status, { "Content-Type": contentType, "Content-Length": Buffer.byteLength(text), "x-amzn-RequestId": "0" });
    res.end(text);
    emit({ event: "request", service: "monitoring", method: req.method, path: "/", status, target });
  };
  if (!signedByRole(req)) return reply(403, "InvalidClientTokenId");
  if ("error" in request) return reply(400, request.error);
  const { namespace } = request;
  const data = request.data.map(({ name, dimensions, value, unit }) => ({ name, dimensions, value, unit }));
  reply(200);
  emit({ event: "metrics-put", namespace, data });
}

let logsServer = null;
let monitoringServer = null;

async function startCloudWatch() {
  logsServer = https.createServer(tls, (req, res) => logsHandler(req, res).catch((e) => fail("logs", e)));
  logsServer.on("tlsClientError", () => {});
  monitoringServer = https.createServer(tls, (req, res) => monitoringHandler(req, res).catch((e) => fail("monitoring", e)));
  monitoringServer.on("tlsClientError", () => {});
  await listen(logsServer, config.logs.port ?? 443, config.logs.address);
  await listen(monitoringServer, config.monitoring.port ?? 443, config.monitoring.address);
}

// --- S3 ------------------------------------------------------------------------------------
let s3 = null;
let s3Server = null;
let s3Started = null; // startS3's promise: s3-put waits for the bucket

// Through s3rver's store, as its PutObject handler does, so the object is whatever s3rver makes
// of one (metadata, ETag) and GetObject serves it in either addressing style.
async function putS3Object(key, text) {
  if (typeof key !== "string" || !key || key.startsWith("/")) throw new Error(`bad S3 key ${JSON.stringify(key)}`);
  if (typeof text !== "string") throw new Error(`S3 object ${key}: the body must be a string`);
  const { bucket } = config.s3;
  const content = Buffer.from(text, "utf8");
  await s3.store.putObject(new S3Object(bucket, key, content, {}));
  // The store's putObject resolves before its write stream has reached the file: wait until
  // it reads back these bytes, so that an acknowledgement means a GetObject gets them.
  await until(
    `S3 object ${key}`,
    async () => {
      const object = await s3.store.getObject(bucket, key);
      return Boolean(object?.content) && (await body(object.content)).equals(content);
    },
    null,
    5000,
  );
}

async function startS3() {
  const { address, bucket, port = 443 } = config.s3;
  s3 = new S3rver({
    address,
    port,
    silent: true, // its logger would write to stdout
    directory: join(dir, "s3"),
    ...tls,
    // The default, spelled out: s3.<region>.amazonaws.com is path-style (the bucket is the
    // first path segment), <bucket>.s3.<region>.amazonaws.com virtual-host style.
    serviceEndpoint: "amazonaws.com",
    vhostBuckets: true,
    configureBuckets: [{ name: bucket }],
  });
  s3.on("error", () => {}); // Koa's default handler logs to stderr; requests get their S3 error
  await s3.configureBuckets();
  for (const { key, body: text } of config.s3.objects ?? []) await putS3Object(key, text);
  const koa = s3.callback();
  const token = imdsConfig.credentials.Token;
  // In front of s3rver: the role's session token must come with every signed request, as S3
  // wants it for temporary credentials (s3rver itself checks only the key and signature).
  s3Server = https.createServer(tls, (req, res) => {
    const method = req.method;
    const host = String(req.headers.host ?? "").replace(/:\d+$/, "");
    const query = new URL(req.url, "https://s3").searchParams;
    // After s3rver's routing, req.url has the bucket first, whichever style the client used.
    res.on("finish", () => emit({ event: "request", service: "s3", method, path: new URL(req.url, "https://s3").pathname, status: res.statusCode, host }));
    const signed = "authorization" in req.headers || query.has("X-Amz-Credential") || query.has("Signature");
    const presented = req.headers["x-amz-security-token"] ?? query.get("X-Amz-Security-Token");
    if (token && signed && presented !== token) {
      const text = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidToken</Code><Message>The provided token is malformed or otherwise invalid.</Message></Error>';
      res.writeHead(400, { "Content-Type": "application/xml", "Content-Length": Buffer.byteLength(text) });
      return res.end(method === "HEAD" ? undefined : text);
    }
    koa(req, res);
  });
  s3Server.on("tlsClientError", () => {});
  await listen(s3Server, port, address);
}

// --- DNS (knotd) ---------------------------------------------------------------------------
let knotd = null;

async function startDns() {
  const { address, zones, port = 53 } = config.dns;
  const root = join(dir, "knot");
  mkdirSync(root, { recursive: true });
  for (const [zone, text] of Object.entries(zones)) writeFileSync(join(root, `${zone}.zone`), text);
  writeFileSync(
    join(root, "knot.conf"),
    [
      "server:",
      `    rundir: "${root}"`,
      `    listen: ${address}@${port}`,
      "database:",
      `    storage: "${root}"`,
      "log:",
      "  - target: stderr",
      "    any: info",
      "acl:",
      "  - id: transfer",
      "    address: [127.0.0.0/8, " + address + "]",
      "    action: transfer",
      "template:",
      "  - id: default",
      `    storage: "${root}"`,
      "    semantic-checks: on",
      "    zonefile-sync: -1",
      "    zonefile-load: whole",
      "    journal-content: none",
      "zone:",
      ...Object.keys(zones).flatMap((zone) => [`  - domain: ${zone}`, `    file: ${zone}.zone`, "    acl: transfer"]),
      "",
    ].join("\n"),
  );
  knotd = startChild("knot", "knotd", ["-c", join(root, "knot.conf")]);
  const resolver = new Resolver({ timeout: 1000, tries: 1 });
  resolver.setServers([port === 53 ? address : `${address}:${port}`]);
  for (const zone of Object.keys(zones)) await until(`knotd serving ${zone}`, async () => Boolean(await resolver.resolveSoa(zone)), knotd);
  if (config.dns.resolver) await startResolver(config.dns.resolver, address, port, Object.keys(zones));
}

// A recursive resolver over the stack's zones, as the ACME server's own: it follows the
// records' CNAMEs (autoconfig.<domain> → the host name) across zones, which an authoritative
// server alone does not. Without DNSSEC: the test's zones are unsigned.
async function startResolver(address, authority, authorityPort, zones) {
  const root = join(dir, "resolver");
  mkdirSync(root, { recursive: true });
  writeFileSync(
    join(root, "unbound.conf"),
    [
      "server:",
      `  interface: ${address}`,
      "  port: 53",
      "  access-control: 0.0.0.0/0 allow",
      "  do-ip6: no",
      '  username: ""',
      '  chroot: ""',
      `  directory: "${root}"`,
      `  pidfile: "${root}/unbound.pid"`,
      "  use-syslog: no",
      "  do-not-query-localhost: no",
      '  module-config: "iterator"',
      ...zones.flatMap((zone) => ["stub-zone:", `  name: "${zone}"`, `  stub-addr: ${authority}@${authorityPort}`]),
      "",
    ].join("\n"),
  );
  const unbound = startChild("resolver", "unbound", ["-d", "-c", join(root, "unbound.conf")]);
  const resolver = new Resolver({ timeout: 1000, tries: 1 });
  resolver.setServers([address]);
  for (const zone of zones) await until(`unbound resolving ${zone}`, async () => Boolean(await resolver.resolveSoa(zone)), unbound);
}

// --- ACME (pebble behind a proxy) ----------------------------------------------------------
let pebble = null;
let acmeServer = null;
const toPebble = new https.Agent({ keepAlive: true, rejectUnauthorized: false });

function pebbleGet(base, path) {
  return new Promise((resolve, reject) => {
    const req = https.get(`https://${base}${path}`, { agent: toPebble }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString("utf8")) : reject(new Error(`${path}: ${res.statusCode}`))));
    });
    req.on("error", reject);
  });
}

async function startAcme() {
  const { address, dnsServer, httpPort = 80, tlsPort = 5001, port = 443 } = config.acme;
  const pebbleConfig = join(dir, "pebble.json");
  writeFileSync(
    pebbleConfig,
    JSON.stringify(
      {
        pebble: {
          listenAddress: PEBBLE.listen,
          managementListenAddress: PEBBLE.management,
          certificate: config.tls.cert,
          privateKey: config.tls.key,
          httpPort,
          tlsPort,
          ocspResponderURL: "",
          externalAccountBindingRequired: false,
        },
      },
      null,
      2,
    ),
  );
  pebble = startChild("pebble", "pebble", ["-config", pebbleConfig, "-dnsserver", dnsServer], { PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0" });
  await until("pebble", async () => Boolean((await pebbleGet(PEBBLE.listen, "/dir")) && (await pebbleGet(PEBBLE.management, "/roots/0"))), pebble);

  // Pebble builds every URL it hands out from the request's Host (and https, as it is reached
  // over TLS), so with the client's Host passed through they all name the public host name.
  const [pebbleHost, pebblePort] = PEBBLE.listen.split(":");
  acmeServer = https.createServer(tls, (req, res) => {
    const path = req.url;
    const upstreamPath = /^\/directory\/?(\?.*)?$/.test(path) ? "/dir" : path;
    const done = (status) => emit({ event: "request", service: "acme", method: req.method, path: new URL(path, "https://acme").pathname, status });
    const upstream = https.request(
      { host: pebbleHost, port: Number(pebblePort), method: req.method, path: upstreamPath, headers: req.headers, agent: toPebble, servername: "" },
      (up) => {
        res.writeHead(up.statusCode, up.rawHeaders);
        up.pipe(res);
        up.on("end", () => done(up.statusCode));
      },
    );
    upstream.on("error", (e) => {
      fail("acme", e);
      if (!res.headersSent) res.writeHead(502, { "Content-Type": "text/plain" });
      res.end("bad gateway\n");
      done(502);
    });
    req.pipe(upstream);
  });
  acmeServer.on("tlsClientError", () => {});
  await listen(acmeServer, port, address);
}

async function acmeRoots() {
  const [root, intermediate] = await Promise.all([pebbleGet(PEBBLE.management, "/roots/0"), pebbleGet(PEBBLE.management, "/intermediates/0")]);
  return { root, intermediate };
}

// --- IMDS server ---------------------------------------------------------------------------
let imdsServer = null;

async function startImds() {
  imdsServer = http.createServer(imdsHandler);
  await listen(imdsServer, imdsConfig.port ?? 80, imdsConfig.address);
}

// --- control -------------------------------------------------------------------------------
async function shutdown(code) {
  if (!stopping) {
    stopping = (async () => {
      const quietly = (p) => Promise.resolve(p).catch((e) => log(e?.message ?? e));
      await Promise.all([
        quietly(closeServer(imdsServer)),
        quietly(ssmDown()),
        quietly(closeServer(acmeServer)),
        quietly(closeServer(s3Server)),
        quietly(closeServer(logsServer)),
        quietly(closeServer(monitoringServer)),
      ]);
      toPebble.destroy();
      await Promise.all([...children.values()].map((c) => quietly(stopChild(c))));
    })();
  }
  await stopping;
  if (code === 0) emit({ event: "stopped" });
  process.exit(code);
}

async function command(line) {
  if (!line.trim()) return;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch {
    return fail("control", `not JSON: ${line}`);
  }
  try {
    switch (msg.cmd) {
      case "ssm-up":
        await ssmUp();
        return emit({ event: "ssm-up" });
      case "ssm-down":
        await ssmDown();
        return emit({ event: "ssm-down" });
      case "ssm-parameters":
        setParameters(msg.parameters);
        return emit({ event: "ssm-parameters", count: ssmParameters.size });
      case "ssm-put":
        return emit({ event: "ssm-put-done", count: putParameters(msg.parameters) });
      case "ssm-get":
        return emit({ event: "ssm-value", name: msg.name, value: ssmParameters.get(msg.name)?.Value ?? null });
      case "s3-put":
        if (!s3Started) throw new Error("S3 is not started");
        await s3Started;
        await putS3Object(msg.key, msg.body);
        return emit({ event: "s3-put-done", key: msg.key });
      case "acme-roots":
        return emit({ event: "acme-roots", ...(await acmeRoots()) });
      case "stop":
        return await shutdown(0);
      default:
        return fail("control", `unknown command: ${line}`);
    }
  } catch (e) {
    fail(msg.cmd === "acme-roots" ? "acme" : msg.cmd?.startsWith("ssm") ? "ssm" : msg.cmd?.startsWith("s3") ? "s3" : "control", e);
  }
}

process.on("SIGTERM", () => void shutdown(0));
process.on("SIGINT", () => void shutdown(0));
process.on("exit", () => {
  for (const c of children.values()) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});
process.on("unhandledRejection", (e) => {
  fail("internet", e);
  void shutdown(1);
});
process.on("uncaughtException", (e) => {
  fail("internet", e);
  void shutdown(1);
});

// Commands run one after another, in the order they came.
let queue = Promise.resolve();
const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => (queue = queue.then(() => command(line))));
rl.on("close", () => (queue = queue.then(() => shutdown(0))));

setParameters(ssmConfig.parameters);
const steps = [
  ["imds", startImds],
  ["dns", startDns],
  ["s3", () => (s3Started = startS3())],
  ["acme", startAcme],
  ["cloudwatch", startCloudWatch],
  ["ssm", () => (ssmConfig.up ? ssmUp() : undefined)],
];
try {
  await Promise.all(
    steps.map(([service, start]) =>
      Promise.resolve()
        .then(start)
        .catch((e) => {
          throw Object.assign(new Error(`${service}: ${e.message}`), { service });
        }),
    ),
  );
  emit({ event: "ready" });
} catch (e) {
  fail(e.service ?? "internet", e.message);
  await shutdown(1);
}
