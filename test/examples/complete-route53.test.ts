// examples/complete with `dnsProvider: route53` and a non-mail domain, under the recording mock
// runtime. A file of its own: the example module runs once per test file.
import type { RecordedResource, Run } from "../support/harness";
import { runComplete } from "./complete";

let run: Run;

beforeAll(async () => {
  run = await runComplete({ dnsProvider: "route53", nonMailDomains: JSON.stringify(["example-shop.com"]) });
});

const recordSet = (type: string, name: string): RecordedResource => run.named(`mail-dns-${type.toLowerCase()}-${name}`);

test("records go to Route 53 only, in the public zone of each domain, looked up by name", () => {
  expect(run.ofType("cloudflare:index/dnsRecord:DnsRecord")).toEqual([]);
  expect(run.record.invokes.filter((i) => i.token.startsWith("cloudflare:"))).toEqual([]);
  const lookups = run.record.invokes.filter((i) => i.token === "aws:route53/getZone:getZone").map((i) => i.inputs.name);
  expect(lookups.sort()).toEqual(["example-shop.com", "example.com", "example.org"]);
  expect(recordSet("MX", "example.org").inputs.records).toEqual(["10 mail.example.com"]);
  expect(recordSet("MX", "example-shop.com").inputs.records).toEqual(["0 ."]);
  expect(recordSet("SRV", "_pop3s._tcp.example.com").inputs.records).toEqual(["0 1 995 mail.example.com"]);
  expect(recordSet("MX", "example-shop.com").inputs.zoneId).not.toBe(recordSet("MX", "example.com").inputs.zoneId);
});

test("the reverse DNS waits for the host's A record set", () => {
  const ptr = run.ofType("aws:ec2/eipDomainName:EipDomainName");
  expect(ptr).toHaveLength(1);
  expect(ptr[0].dependsOn).toContain(recordSet("A", "mail.example.com").urn);
  expect(run.outputs.dsRecords).toEqual([]);
});
