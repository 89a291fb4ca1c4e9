// MailDns became MailDnsCloudflare, which changed its type token and so every URN below it.
// The alias of the old token is what lets a stack made before the rename keep its records.
import { MailDns, MailDnsCloudflare, MailStack } from "@mailstack/pulumi";
import * as pulumi from "@pulumi/pulumi";
import { minimalConfig } from "../support/fixtures";
import { type Run, runProgram } from "../support/harness";
import { stackArgs } from "./args";

const OLD_TYPE = "mailstack:cloudflare:MailDns";
const NEW_TYPE = "mailstack:cloudflare:MailDnsCloudflare";

interface AliasSpec {
  name: string;
  type: string;
  stack: string;
  project: string;
  parenturn: string;
  noparent: boolean;
}

/**
 * The aliases each registration carried to the engine, by resource name. The recording mock
 * does not keep them, so the monitor it installed is wrapped for the length of the program.
 */
function recordAliases(into: Map<string, { urn: string; spec?: AliasSpec }[]>): void {
  const settings = require("@pulumi/pulumi/runtime/settings");
  const monitor = settings.getMonitor();
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req: any, callback: unknown) => {
    into.set(req.getName(), req.getAliasesList().map((a: any) => a.toObject()));
    return register(req, callback);
  };
}

let run: Run;
let route53: Run;
const aliases = new Map<string, { urn: string; spec?: AliasSpec }[]>();
const route53Aliases = new Map<string, { urn: string; spec?: AliasSpec }[]>();
let dns: pulumi.Resource;

beforeAll(async () => {
  run = await runProgram(() => {
    recordAliases(aliases);
    dns = new MailStack("mail", stackArgs(minimalConfig())).dns;
  });
  route53 = await runProgram(() => {
    recordAliases(route53Aliases);
    new MailStack("mail", stackArgs({ ...minimalConfig(), dnsProvider: "route53" }));
  });
});

test("the Cloudflare component registers under its new type token", () => {
  expect(run.named("mail-dns").type).toBe(NEW_TYPE);
  expect(run.ofType(OLD_TYPE)).toEqual([]);
});

test("it carries the old type token as an alias: same name, same parent", () => {
  const parent = run.named("mail").urn;
  const list = aliases.get("mail-dns") ?? [];
  expect(list).toHaveLength(1);
  expect(list[0].spec).toMatchObject({ name: "", type: OLD_TYPE, stack: "", project: "", parenturn: parent });
});

test("the alias resolves to the URN the component had before the rename", async () => {
  expect(run.named("mail-dns").urn.endsWith(`$${NEW_TYPE}::mail-dns`)).toBe(true);
  // A child's URN is urn:pulumi:<stack>::<project>::<parent's qualified type>$<type>::<name>.
  const parentQualifiedType = run.named("mail").urn.split("::")[2];
  const former = `urn:pulumi:test::mailstack::${parentQualifiedType}$${OLD_TYPE}::mail-dns`;
  // The SDK collapses the alias to a URN by the engine's rule.
  const resolved = await Promise.all(((dns as any).__aliases as pulumi.Output<string>[]).map((a) => new Promise((resolve) => a.apply(resolve))));
  expect(resolved).toEqual([former]);
});

test("only the renamed component carries a mailstack alias; its records inherit it from their parent", () => {
  const ours = (name: string) => (aliases.get(name) ?? []).filter((a) => a.spec?.type.startsWith("mailstack:"));
  expect([...aliases.keys()].filter((name) => ours(name).length > 0)).toEqual(["mail-dns"]);
  // A record's own aliases are its provider's former type names; the engine derives the
  // rest from the parent's alias (a child's URN contains its parent's type).
  for (const record of run.ofType("cloudflare:index/dnsRecord:DnsRecord")) {
    expect({ record: record.name, aliases: (aliases.get(record.name) ?? []).map((a) => a.spec?.type) }).toEqual({ record: record.name, aliases: ["cloudflare:index/record:Record"] });
  }
  expect(route53.named("mail-dns").type).toBe("mailstack:aws:MailDnsRoute53");
  expect(route53Aliases.get("mail-dns")).toEqual([]);
});

test("the old name is still exported, deprecated, as the same class", () => {
  expect(MailDns).toBe(MailDnsCloudflare);
  expect(run.ofType(NEW_TYPE)).toHaveLength(1);
  expect(dns).toBeInstanceOf(MailDns);
});
