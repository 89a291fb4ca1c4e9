// examples/complete with `dnsProvider: route53` and a non-mail domain, under the recording mock
// runtime. A file of its own: the example module runs once per test file.
import { SAMPLE_HASH } from "../support/fixtures";
import { type RecordedResource, type Run, runProgram } from "../support/harness";

const project = "mailstack-example-complete";
let run: Run;

beforeAll(async () => {
  run = await runProgram(() => require("../../examples/complete/index.ts"), {
    project,
    stack: "prod",
    config: {
      [`${project}:domain`]: "example.com",
      [`${project}:secondDomain`]: "example.org",
      [`${project}:alertEmail`]: "ops@example.net",
      [`${project}:alicePassword`]: "correct horse battery staple",
      [`${project}:bobPassword`]: "tulip-gravel-Orbit-42-lantern",
      [`${project}:carolPasswordHash`]: SAMPLE_HASH,
      [`${project}:dnsProvider`]: "route53",
      [`${project}:nonMailDomains`]: JSON.stringify(["example-shop.com"]),
    },
    secretKeys: [`${project}:alicePassword`, `${project}:bobPassword`, `${project}:carolPasswordHash`],
  });
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
