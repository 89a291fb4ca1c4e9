/**
 * The MTA-STS policy as a sending server fetches it (RFC 8461 §3.3): over HTTPS from
 * `mta-sts.<domain>`, with a certificate valid for that name, status 200, no redirect.
 */
import { createHash } from "node:crypto";
import { request } from "node:https";
import { verdict, type Verdict } from "./check-verdict";

export const POLICY_PATH = "/.well-known/mta-sts.txt";

export interface FetchedPolicy {
  status?: number;
  contentType?: string;
  body?: string;
  error?: string;
}

/** GET of the policy from `address:port`, verified for `mta-sts.<domain>` against `ca` (or Node's CAs). */
export function fetchPolicy(domain: string, address: string, port: number, ca: string | undefined, timeoutMs: number): Promise<FetchedPolicy> {
  const servername = `mta-sts.${domain}`;
  return new Promise((resolve) => {
    const req = request({ host: address, port, path: POLICY_PATH, servername, headers: { Host: servername }, ca, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, contentType: String(res.headers["content-type"] ?? ""), body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", (e) => resolve({ error: e.message }));
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on("error", (e) => resolve({ error: `${(e as NodeJS.ErrnoException).code ?? ""} ${e.message}`.trim() }));
    req.end();
  });
}

/** The policy's fields (RFC 8461 §3.2); a message naming the first line that breaks the grammar. */
export function parsePolicy(text: string): { mode?: string; mx: string[]; version?: string; maxAge?: string } | string {
  const fields: { mx: string[]; [k: string]: string | string[] | undefined } = { mx: [] };
  for (const line of text.split(/\r?\n/).filter((l) => l !== "")) {
    const m = line.match(/^([A-Za-z0-9_]+):[ \t]*(\S(?:.*\S)?)[ \t]*$/);
    if (!m) return `not a policy line: ${JSON.stringify(line)}`;
    if (m[1] === "mx") fields.mx.push(m[2].toLowerCase());
    else fields[m[1]] = m[2];
  }
  return { version: fields.version as string | undefined, mode: fields.mode as string | undefined, mx: fields.mx, maxAge: fields.max_age as string | undefined };
}

/** RFC 8461 §4.1: a `*.` pattern covers exactly one more label. */
const covers = (pattern: string, host: string) => (pattern.startsWith("*.") ? host.split(".").slice(1).join(".") === pattern.slice(2) : host === pattern);

/**
 * The served policy against the plan: mailstack's id is the first 20 hex digits of the
 * policy's SHA-256, so a policy whose hash is not the planned id is not the planned policy
 * (an old one still served, or one edited by hand), and senders that cached the planned id
 * would not fetch it again. Its mx lines must cover every MX host of the domain.
 */
export function policyVerdict(domain: string, plannedId: string, mxHosts: string[], fetched: FetchedPolicy): Verdict {
  const id = `mta-sts:policy:${domain}`;
  const check = `MTA-STS policy https://mta-sts.${domain}${POLICY_PATH}`;
  const expected = `200 text/plain, id ${plannedId}, mx ${mxHosts.join(", ") || "(none)"}`;
  if (fetched.error !== undefined) return verdict(id, check, "fail", expected, fetched.error);
  if (fetched.status !== 200) return verdict(id, check, "fail", expected, `HTTP ${fetched.status} (senders accept 200 only, no redirects)`);
  if (!/^text\/plain(;|$)/i.test(fetched.contentType ?? "")) return verdict(id, check, "fail", expected, `Content-Type ${fetched.contentType || "(none)"}, not text/plain`);
  const body = fetched.body ?? "";
  const policy = parsePolicy(body);
  if (typeof policy === "string") return verdict(id, check, "fail", expected, policy);
  const servedId = createHash("sha256").update(body).digest("hex").slice(0, 20);
  const problems: string[] = [];
  if (policy.version !== "STSv1") problems.push(`version ${policy.version ?? "(none)"}`);
  if (servedId !== plannedId) problems.push(`served policy has id ${servedId}, the plan's is ${plannedId} (mode ${policy.mode ?? "none"})`);
  if (policy.mode !== "none") {
    const uncovered = mxHosts.filter((h) => !policy.mx.some((p) => covers(p, h)));
    if (uncovered.length > 0) problems.push(`no mx line covers ${uncovered.join(", ")}`);
  }
  const summary = `mode ${policy.mode}, mx ${policy.mx.join(", ") || "(none)"}, id ${servedId}`;
  return problems.length === 0 ? verdict(id, check, "ok", expected, summary) : verdict(id, check, "fail", expected, problems.join("; "));
}
