/**
 * The slices of SSM and S3 that mailstack-sync uses, served on 127.0.0.1 for the host tests
 * that run the real script (Debian's python3 and boto3) against them.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type LogEvent, logBatchProblems, type MetricDatum, metricDataAnswer, parseMetricData } from "./cloudwatch-wire";

/** GetParametersByPath returns at most 10 parameters per call. */
export const SSM_PAGE = 10;

/** One request to the fake SSM. */
export interface SsmRequest {
  /** The X-Amz-Target header, e.g. AmazonSSM.GetParametersByPath. */
  target: string;
  /** The request's JSON body. */
  body: { Path?: string; Recursive?: boolean; WithDecryption?: boolean; NextToken?: string; MaxResults?: number; Name?: string; Value?: string; Type?: string; Overwrite?: boolean };
}

/** A local HTTP server on an ephemeral port of 127.0.0.1. */
abstract class LocalServer {
  private server?: Server;
  port = 0;

  async start(): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    this.port = (server.address() as AddressInfo).port;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  protected abstract handle(req: IncomingMessage, res: ServerResponse): void;
}

/** SSM's JSON protocol: GetParametersByPath with pagination, and PutParameter of a String. */
export class FakeSsm extends LocalServer {
  readonly parameters = new Map<string, string>();
  readonly requests: SsmRequest[] = [];
  /** Answers GetParametersByPath with AccessDeniedException, as SSM does for a role without the permission. */
  refuse = false;
  /** Answers PutParameter with AccessDeniedException. */
  refusePut = false;
  /** At most this many parameters a page (SSM may return fewer than MaxResults). */
  pageSize = SSM_PAGE;

  /** Replaces every parameter, as a `pulumi up` that declares exactly these would. */
  publish(values: Map<string, string>): void {
    this.parameters.clear();
    for (const [k, v] of values) this.parameters.set(k, v);
  }

  /** The values of every PutParameter so far, parsed. */
  puts(): Record<string, unknown>[] {
    return this.requests.filter((r) => r.target === "AmazonSSM.PutParameter").map((r) => JSON.parse(r.body.Value!) as Record<string, unknown>);
  }

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const reply = (status: number, body: unknown) => {
        const text = JSON.stringify(body);
        res.writeHead(status, { "Content-Type": "application/x-amz-json-1.1", "Content-Length": Buffer.byteLength(text), "x-amzn-RequestId": "00000000-0000-0000-0000-000000000000" });
        res.end(text);
      };
      const target = String(req.headers["x-amz-target"] ?? "");
      let body: SsmRequest["body"];
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
      } catch {
        return reply(400, { __type: "SerializationException", message: "body is not JSON" });
      }
      this.requests.push({ target, body });
      if (req.method !== "POST") return reply(400, { __type: "InvalidAction", message: "POST only" });
      if (target === "AmazonSSM.PutParameter") {
        if (this.refusePut) return reply(400, { __type: "AccessDeniedException", message: "not authorized to perform ssm:PutParameter" });
        if (!body.Name || body.Value === undefined || body.Type !== "String" || body.Overwrite !== true) return reply(400, { __type: "ValidationException", message: "Name, Value, Type String and Overwrite expected" });
        this.parameters.set(body.Name, body.Value);
        return reply(200, { Version: 1, Tier: "Standard" });
      }
      if (target !== "AmazonSSM.GetParametersByPath") return reply(400, { __type: "UnknownOperationException", message: target });
      if (this.refuse) return reply(400, { __type: "AccessDeniedException", message: "not authorized to perform ssm:GetParametersByPath" });
      if (!body.Path || !body.Path.startsWith("/")) return reply(400, { __type: "ValidationException", message: "Path must start with /" });
      const base = body.Path.replace(/\/$/, "") + "/";
      const names = [...this.parameters.keys()].filter((n) => n.startsWith(base) && (body.Recursive || !n.slice(base.length).includes("/"))).sort();
      const start = body.NextToken ? Number(Buffer.from(body.NextToken, "base64").toString("utf8").replace(/^offset:/, "")) : 0;
      if (!Number.isInteger(start)) return reply(400, { __type: "InvalidNextToken", message: "bad token" });
      const size = Math.min(body.MaxResults ?? SSM_PAGE, this.pageSize);
      const out: Record<string, unknown> = {
        Parameters: names.slice(start, start + size).map((Name) => ({
          Name,
          Type: "SecureString",
          // Without WithDecryption, SSM returns the KMS ciphertext of a SecureString.
          Value: body.WithDecryption ? this.parameters.get(Name) : Buffer.from(`ciphertext:${Name}`).toString("base64"),
          Version: 1,
          DataType: "text",
          ARN: `arn:aws:ssm:us-east-1:123456789012:parameter${Name}`,
        })),
      };
      if (start + size < names.length) out.NextToken = Buffer.from(`offset:${start + size}`).toString("base64");
      reply(200, out);
    });
  }
}

/** One request to the fake S3. */
export interface S3Request {
  /** "/<bucket>/<key>", whichever addressing style the request used. */
  path: string;
  /** "path": GET /<bucket>/<key>; "virtual": the bucket in the host name (through a proxy). */
  style: "path" | "virtual";
  /** The host the request was for. */
  host: string;
}

/**
 * S3's GetObject with its error documents: path style (GET /<bucket>/<key>), or, through it as
 * an HTTP proxy, virtual-hosted style (GET http://<bucket>.s3.<...>/<key>). Only signed GETs.
 */
export class FakeS3 extends LocalServer {
  /** "/<bucket>/<key>" to the object's bytes. */
  readonly objects = new Map<string, Buffer>();
  readonly requests: S3Request[] = [];
  /** Answers 403 AccessDenied, as S3 does for a role without s3:GetObject. */
  refuse = false;
  /** Sends half the object, then drops the connection. */
  cutOff = false;

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    const raw = req.url ?? "";
    let request: S3Request;
    if (/^https?:\/\//.test(raw)) {
      // Through the proxy: virtual-hosted style names the bucket in front of the endpoint's s3 host name.
      const url = new URL(raw);
      const bucket = /^(.+?)\.s3[.-]/.exec(url.hostname)?.[1];
      const path = decodeURIComponent(url.pathname);
      request = bucket ? { path: `/${bucket}${path}`, style: "virtual", host: url.host } : { path, style: "path", host: url.host };
    } else {
      request = { path: decodeURIComponent(raw.split("?")[0]), style: "path", host: String(req.headers.host ?? "") };
    }
    this.requests.push(request);
    const error = (status: number, code: string, message: string) => {
      res.writeHead(status, { "Content-Type": "application/xml", "x-amz-request-id": "0000000000000000" });
      res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><Key>${request.path.split("/").slice(2).join("/")}</Key><RequestId>0000000000000000</RequestId></Error>`);
    };
    if (req.method !== "GET" || !String(req.headers.authorization ?? "").startsWith("AWS4-HMAC-SHA256 ")) return error(403, "AccessDenied", "signed GET only");
    if (this.refuse) return error(403, "AccessDenied", "Access Denied");
    const object = this.objects.get(request.path);
    if (!object) return error(404, "NoSuchKey", "The specified key does not exist.");
    res.writeHead(200, {
      "Content-Type": "application/octet-stream",
      "Content-Length": object.length,
      ETag: `"${createHash("md5").update(object).digest("hex")}"`,
      "Last-Modified": new Date(0).toUTCString(),
    });
    if (this.cutOff) {
      res.write(object.subarray(0, object.length >> 1));
      setTimeout(() => res.destroy(), 50);
      return;
    }
    res.end(object);
  }
}

/** A fake SSM and S3 for a suite: started before its first test, stopped after its last. */
export function fakeAws(): { ssm: FakeSsm; s3: FakeS3 } {
  const ssm = new FakeSsm();
  const s3 = new FakeS3();
  beforeAll(async () => {
    await ssm.start();
    await s3.start();
  });
  afterAll(async () => {
    await ssm.stop();
    await s3.stop();
  });
  return { ssm, s3 };
}

/**
 * The environment the sync runs in against the fakes: a home of its own and fixed test
 * credentials, and nothing of this machine's AWS configuration or metadata service.
 */
export function fakeAwsEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    HOME: home,
    LANG: "C.UTF-8",
    AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE",
    AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    AWS_CONFIG_FILE: `${home}/no-aws-config`,
    AWS_SHARED_CREDENTIALS_FILE: `${home}/no-aws-credentials`,
    AWS_EC2_METADATA_DISABLED: "true",
    ...extra,
  };
}

/**
 * CloudWatch's PutMetricData, in both protocols botocore has spoken: the query protocol
 * (form-encoded, XML answer; botocore before its JSON model) and AWS JSON 1.0.
 */
export class FakeCloudWatch extends LocalServer {
  readonly data: MetricDatum[] = [];
  /** Answers AccessDenied, as CloudWatch does for a role without cloudwatch:PutMetricData. */
  refuse = false;
  /** The protocols requests came in, in order. */
  readonly protocols: ("query" | "json")[] = [];

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const request = parseMetricData(String(req.headers["x-amz-target"] ?? ""), Buffer.concat(chunks).toString("utf8"));
      const { json } = request;
      const reply = (status: number, code?: string) => {
        const { contentType, body } = metricDataAnswer(json, code);
        res.writeHead(status, { "Content-Type": contentType, "Content-Length": Buffer.byteLength(body), "x-amzn-RequestId": "0" });
        res.end(body);
      };
      if (!String(req.headers.authorization ?? "").startsWith("AWS4-HMAC-SHA256 ")) return reply(403, "MissingAuthenticationToken");
      if ("error" in request) return reply(400, request.error);
      const { data } = request;
      this.protocols.push(json ? "json" : "query");
      if (this.refuse) return reply(403, "AccessDenied");
      this.data.push(...data);
      reply(200);
    });
  }

  /** The last value pushed for each metric name. */
  latest(): Record<string, MetricDatum> {
    return Object.fromEntries(this.data.map((d) => [d.name, d]));
  }
}

/**
 * CloudWatch Logs' CreateLogStream and PutLogEvents (AWS JSON 1.1), enforcing the limits of a
 * PutLogEvents call: a batch that breaks one is refused (InvalidParameterException) and
 * recorded in `violations`, so a test can also assert there were none.
 */
export class FakeLogs extends LocalServer {
  /** Existing log groups. */
  readonly groups = new Set<string>();
  /** "group stream" to the events it holds, in the order accepted. */
  readonly streams = new Map<string, LogEvent[]>();
  /** Every accepted PutLogEvents: its stream, event count and size as CloudWatch counts it. */
  readonly puts: { stream: string; events: number; bytes: number; spanMs: number }[] = [];
  readonly violations: string[] = [];
  readonly targets: string[] = [];
  /** Drops every connection unanswered, as an unreachable endpoint. */
  down = false;

  events(group: string, stream: string): LogEvent[] {
    return this.streams.get(`${group} ${stream}`) ?? [];
  }

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.down) {
      req.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const reply = (status: number, body: unknown) => {
        const text = JSON.stringify(body);
        res.writeHead(status, { "Content-Type": "application/x-amz-json-1.1", "Content-Length": Buffer.byteLength(text), "x-amzn-RequestId": "0" });
        res.end(text);
      };
      const error = (code: string, message: string) => reply(400, { __type: code, message });
      const target = String(req.headers["x-amz-target"] ?? "");
      this.targets.push(target);
      if (!String(req.headers.authorization ?? "").startsWith("AWS4-HMAC-SHA256 ")) return error("UnrecognizedClientException", "unsigned");
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as { logGroupName: string; logStreamName: string; logEvents?: LogEvent[] };
      const key = `${body.logGroupName} ${body.logStreamName}`;
      if (target === "Logs_20140328.CreateLogStream") {
        if (!this.groups.has(body.logGroupName)) return error("ResourceNotFoundException", "The specified log group does not exist.");
        if (this.streams.has(key)) return error("ResourceAlreadyExistsException", "The specified log stream already exists");
        this.streams.set(key, []);
        return reply(200, {});
      }
      if (target !== "Logs_20140328.PutLogEvents") return error("UnknownOperationException", target);
      const stream = this.streams.get(key);
      if (!stream) return error("ResourceNotFoundException", "The specified log stream does not exist.");
      const events = body.logEvents ?? [];
      const { problems, bytes, spanMs } = logBatchProblems(events);
      if (problems.length) {
        this.violations.push(problems.join(", "));
        return error("InvalidParameterException", problems.join(", "));
      }
      stream.push(...events);
      this.puts.push({ stream: body.logStreamName, events: events.length, bytes, spanMs });
      reply(200, { nextSequenceToken: String(this.puts.length) });
    });
  }
}
