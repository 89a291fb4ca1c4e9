// What CloudWatch and CloudWatch Logs accept and answer, for the stand-ins of both harnesses:
// fake-aws.ts (host and end-to-end tests) and the boot test's internet.mjs, which imports this
// file as it is (Node strips the types), so the two cannot come to disagree.

/** One datum of a PutMetricData, whichever protocol carried it. */
export interface MetricDatum {
  namespace: string;
  name: string;
  dimensions: Record<string, string>;
  value: number;
  unit?: string;
}

/** A log event as PutLogEvents carries it. */
export interface LogEvent {
  timestamp: number;
  message: string;
}

/** PutLogEvents' limits on one call. */
export const LOGS_LIMITS = { events: 10000, bytes: 1048576, eventOverhead: 26, spanMs: 24 * 3600 * 1000, ageMs: 14 * 24 * 3600 * 1000 };

/**
 * A PutMetricData request in either protocol botocore has spoken: AWS JSON 1.0 (an
 * X-Amz-Target header) or the query protocol (form-encoded). An error code when it is another
 * operation.
 */
export function parseMetricData(target: string, text: string): { json: boolean; namespace: string; data: MetricDatum[] } | { json: boolean; error: string } {
  if (target !== "") {
    if (!target.endsWith(".PutMetricData")) return { json: true, error: "UnknownOperationException" };
    const body = JSON.parse(text || "{}") as { Namespace: string; MetricData?: { MetricName: string; Dimensions?: { Name: string; Value: string }[]; Value: number; Unit?: string }[] };
    const data = (body.MetricData ?? []).map((d) => ({ namespace: body.Namespace, name: d.MetricName, dimensions: Object.fromEntries((d.Dimensions ?? []).map((x) => [x.Name, x.Value])), value: d.Value, unit: d.Unit }));
    return { json: true, namespace: body.Namespace, data };
  }
  const form = new URLSearchParams(text);
  if (form.get("Action") !== "PutMetricData") return { json: false, error: "InvalidAction" };
  const data: MetricDatum[] = [];
  for (let i = 1; form.has(`MetricData.member.${i}.MetricName`); i++) {
    const m = `MetricData.member.${i}`;
    const dimensions: Record<string, string> = {};
    for (let j = 1; form.has(`${m}.Dimensions.member.${j}.Name`); j++) dimensions[form.get(`${m}.Dimensions.member.${j}.Name`)!] = form.get(`${m}.Dimensions.member.${j}.Value`)!;
    data.push({ namespace: form.get("Namespace")!, name: form.get(`${m}.MetricName`)!, dimensions, value: Number(form.get(`${m}.Value`)), unit: form.get(`${m}.Unit`) ?? undefined });
  }
  return { json: false, namespace: form.get("Namespace")!, data };
}

/** CloudWatch's answer to a PutMetricData in the request's protocol: success, or the error `code`. */
export function metricDataAnswer(json: boolean, code?: string): { contentType: string; body: string } {
  if (json) return { contentType: "application/x-amz-json-1.0", body: JSON.stringify(code ? { __type: code, message: code } : {}) };
  const body = code
    ? `<ErrorResponse><Error><Type>Sender</Type><Code>${code}</Code><Message>${code}</Message></Error><RequestId>0</RequestId></ErrorResponse>`
    : '<PutMetricDataResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><ResponseMetadata><RequestId>0</RequestId></ResponseMetadata></PutMetricDataResponse>';
  return { contentType: "text/xml", body };
}

/** What breaks PutLogEvents' limits in a batch (empty: CloudWatch takes it), with its size. */
export function logBatchProblems(events: LogEvent[], now = Date.now()): { problems: string[]; bytes: number; spanMs: number } {
  const bytes = events.reduce((n, e) => n + Buffer.byteLength(String(e.message)) + LOGS_LIMITS.eventOverhead, 0);
  const spanMs = events.length ? events[events.length - 1].timestamp - events[0].timestamp : 0;
  const problems: string[] = [];
  if (events.length < 1 || events.length > LOGS_LIMITS.events) problems.push(`${events.length} events`);
  if (bytes > LOGS_LIMITS.bytes) problems.push(`${bytes} bytes`);
  if (events.some((e, i) => i > 0 && e.timestamp < events[i - 1].timestamp)) problems.push("not in chronological order");
  if (spanMs > LOGS_LIMITS.spanMs) problems.push(`spans ${spanMs} ms`);
  if (events.some((e) => now - e.timestamp > LOGS_LIMITS.ageMs)) problems.push("an event older than 14 days");
  return { problems, bytes, spanMs };
}
