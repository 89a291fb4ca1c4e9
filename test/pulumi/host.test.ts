// The mail host under the recording mock runtime: instance hardening, AMI lookup, the data
// volume, the Elastic IP with its reverse DNS, the security group and the instance role.
import { CANONICAL_OWNER_ID, MailStack } from "@mailstack/pulumi";
import { fullConfig, minimalConfig } from "../support/fixtures";
import { type Run, runProgram } from "../support/harness";
import { mockSubnetId, stackArgs } from "./args";
import { allows, iamMatches, list, one, type Statement, statements, stringLeaves, T } from "./helpers";

const PINNED_AMI = "ami-0123456789abcdef0";
const GIVEN_SUBNET = "subnet-0123456789abcdef0";
const GIVEN_VPC = "vpc-0123456789abcdef0";
const CUSTOM_PATH = "/custom/mail-prod";

let full: Run; // fullConfig: t4g.small, POP3, one IPv4 admin CIDR, defaults otherwise
let x86: Run; // t3.small, no POP3, IPv4 + IPv6 admin CIDRs, zone us-east-1b, custom parameter path
let pinned: Run; // pinned AMI, protect: false, no admin CIDR, given VPC and subnet

beforeAll(async () => {
  full = await runProgram(() => {
    new MailStack("mail", stackArgs(fullConfig()));
  });
  x86 = await runProgram(() => {
    new MailStack(
      "mail",
      stackArgs(
        {
          ...minimalConfig(),
          instanceType: "t3.small",
          adminCidrs: ["198.51.100.0/24", "2001:db8:1234::/48"],
          availabilityZone: "us-east-1b",
          dataVolumeGiB: 50,
        },
        { parameterPath: CUSTOM_PATH },
      ),
    );
  });
  pinned = await runProgram(() => {
    new MailStack("mail", stackArgs(minimalConfig(), { amiId: PINNED_AMI, protect: false, vpcId: GIVEN_VPC, subnetId: GIVEN_SUBNET }));
  });
});

const runs = () => ({ full, x86, pinned });

describe("instance", () => {
  test("requires IMDSv2 with one hop, encrypted gp3 root, replaced (delete first) when user data changes", () => {
    for (const [label, run] of Object.entries(runs())) {
      const instance = one(run, T.instance);
      expect({ label, metadata: instance.inputs.metadataOptions }).toEqual({
        label,
        metadata: expect.objectContaining({ httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 }),
      });
      expect(instance.inputs.rootBlockDevice).toEqual(expect.objectContaining({ volumeType: "gp3", encrypted: true }));
      expect(instance.inputs.userDataReplaceOnChange).toBe(true);
      expect(instance.deleteBeforeReplace).toBe(true);
      // Only the mailstack security group, and the instance profile of the host role.
      const sg = one(run, T.securityGroup);
      expect(instance.inputs.vpcSecurityGroupIds).toEqual([sg.id]);
      expect(instance.inputs.iamInstanceProfile).toBe(one(run, T.instanceProfile).state.name);
    }
  });

  test("takes its instance type from the config (default t4g.small)", () => {
    expect(one(full, T.instance).inputs.instanceType).toBe("t4g.small");
    expect(one(x86, T.instance).inputs.instanceType).toBe("t3.small");
    expect(one(pinned, T.instance).inputs.instanceType).toBe("t4g.small");
  });

  test("looks up Canonical's Ubuntu 24.04 image for the instance's architecture", () => {
    const cases: [Run, string, string][] = [
      [full, "arm64", "arm64"],
      [x86, "amd64", "x86_64"],
    ];
    for (const [run, nameArch, arch] of cases) {
      const lookups = run.record.invokes.filter((i) => i.token === T.getAmi);
      expect(lookups).toHaveLength(1);
      const { inputs } = lookups[0];
      expect(CANONICAL_OWNER_ID).toBe("099720109477");
      expect(inputs.owners).toEqual(["099720109477"]);
      expect(inputs.mostRecent).toBe(true);
      const filter = (name: string) => inputs.filters.find((f: { name: string }) => f.name === name)?.values;
      expect(filter("name")).toEqual([`ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-${nameArch}-server-*`]);
      expect(filter("architecture")).toEqual([arch]);
      const instance = one(run, T.instance);
      expect(instance.inputs.ami).toMatch(/^ami-[0-9a-f]{17}$/);
      // A newer image must not replace a running host.
      expect(instance.ignoreChanges).toEqual(["ami"]);
    }
  });

  test.each([
    ["cn-north-1", "837727238323"],
    ["us-gov-west-1", "513442679011"],
  ])("in %s the image comes from Canonical's account of that partition", async (region, owner) => {
    const run = await runProgram(() => {
      new MailStack("mail", stackArgs(minimalConfig()));
    }, { config: { "aws:region": region } });
    expect(run.record.invokes.filter((i) => i.token === T.getAmi).map((i) => i.inputs.owners)).toEqual([[owner]]);
  });

  test("a pinned AMI is used as given, not looked up, and changes to it are not ignored", () => {
    expect(pinned.record.invokes.filter((i) => i.token === T.getAmi)).toEqual([]);
    const instance = one(pinned, T.instance);
    expect(instance.inputs.ami).toBe(PINNED_AMI);
    expect(instance.ignoreChanges).toEqual([]);
  });

  test("the host is declared after its parameters exist, and the instance after its bundle and the pointer to it", () => {
    for (const run of Object.values(runs())) {
      const host = one(run, "mailstack:aws:MailHost");
      const parameters = run.ofType(T.parameter).filter((p) => p.parent?.includes("MailParameters"));
      expect(parameters.length).toBeGreaterThan(1);
      for (const p of parameters) expect(host.dependsOn).toContain(p.urn);
      const bundle = run.named("mail-host-bundle");
      const pointer = run.named("mail-host-bundle-pointer");
      expect(pointer.dependsOn).toContain(bundle.urn);
      expect(one(run, T.instance).dependsOn).toContain(pointer.urn);
    }
  });
});

describe("data volume", () => {
  test("is a separate encrypted gp3 volume with a final snapshot, sized from the config, protected by default", () => {
    const cases: [Run, number, boolean][] = [
      [full, 20, true],
      [x86, 50, true],
      [pinned, 20, false],
    ];
    for (const [run, size, protect] of cases) {
      const volume = one(run, T.volume);
      expect(volume.id).toMatch(/^vol-/);
      expect(volume.inputs).toEqual(expect.objectContaining({ type: "gp3", encrypted: true, size, finalSnapshot: true }));
      expect(volume.protect).toBe(protect);
      // Not the root volume: the instance's root device is a different, disposable disk.
      expect(one(run, T.instance).inputs.rootBlockDevice.deleteOnTermination).toBe(true);
    }
  });

  test("lies in the availability zone of the instance's subnet", () => {
    const cases: [Run, string][] = [
      [full, "us-east-1a"], // the region's first zone
      [x86, "us-east-1b"], // the configured zone
    ];
    for (const [run, zone] of cases) {
      const subnetLookup = run.record.invokes.filter((i) => i.token === T.getSubnet);
      expect(subnetLookup).toHaveLength(1);
      const zoneFilter = subnetLookup[0].inputs.filters.find((f: { name: string }) => f.name === "availability-zone");
      expect(zoneFilter.values).toEqual([zone]);
      expect(one(run, T.instance).inputs.subnetId).toBe(mockSubnetId(zone));
      expect(one(run, T.volume).inputs.availabilityZone).toBe(zone);
    }
    // A given subnet: its zone is looked up (the mock answers us-east-1a for a bare id).
    const lookups = pinned.record.invokes.filter((i) => i.token === T.getSubnet);
    expect(lookups.map((i) => i.inputs)).toEqual([{ id: GIVEN_SUBNET }]);
    expect(pinned.record.invokes.filter((i) => i.token === "aws:ec2/getVpc:getVpc")).toEqual([]);
    expect(one(pinned, T.instance).inputs.subnetId).toBe(GIVEN_SUBNET);
    expect(one(pinned, T.volume).inputs.availabilityZone).toBe("us-east-1a");
    expect(one(pinned, T.securityGroup).inputs.vpcId).toBe(GIVEN_VPC);
  });

  test("is attached to the instance, stopping it before detaching, and named in the host bundle", () => {
    for (const run of Object.values(runs())) {
      const volume = one(run, T.volume);
      const instance = one(run, T.instance);
      const attachment = one(run, T.attachment);
      expect(attachment.inputs.volumeId).toBe(volume.id);
      expect(attachment.inputs.instanceId).toBe(instance.id);
      expect(attachment.inputs.stopInstanceBeforeDetaching).toBe(true);
      expect(attachment.dependsOn).toEqual(expect.arrayContaining([volume.urn, instance.urn]));
      expect(run.named("mail-host-bundle").inputs.content).toContain(`MAILSTACK_DATA_VOLUME_ID=\\"${volume.id}\\"`);
      expect(run.userData()).not.toContain(volume.id);
    }
  });
});

describe("Elastic IP", () => {
  test("is protected by default, associated with the instance, and has reverse DNS after the A record", () => {
    const cases: [Run, boolean][] = [
      [full, true],
      [x86, true],
      [pinned, false],
    ];
    for (const [run, protect] of cases) {
      const eip = one(run, T.eip);
      const instance = one(run, T.instance);
      expect(eip.protect).toBe(protect);
      expect(eip.inputs.domain).toBe("vpc");
      const association = one(run, T.eipAssociation);
      expect(association.inputs).toEqual(expect.objectContaining({ allocationId: eip.state.allocationId, instanceId: instance.id }));

      const ptr = one(run, T.eipDomainName);
      expect(ptr.inputs).toEqual({ allocationId: eip.state.allocationId, domainName: "mail.example.com" });
      const hostA = run.named("mail-dns-host-a");
      expect(hostA.type).toBe(T.dnsRecord);
      expect(hostA.inputs).toEqual(expect.objectContaining({ type: "A", name: "mail.example.com", content: eip.state.publicIp }));
      // Created after the A record; on destroy removed before it and before the address.
      expect(ptr.dependsOn).toEqual(expect.arrayContaining([hostA.urn, eip.urn]));
    }
  });
});

describe("security group", () => {
  const ingress = (run: Run) => run.ofType(T.ingress);
  const coversSsh = (r: { inputs: Record<string, any> }) =>
    ["-1", "all"].includes(String(r.inputs.ipProtocol)) || (r.inputs.fromPort <= 22 && 22 <= r.inputs.toPort);

  test("opens exactly the mail, ACME and HTTPS (MTA-STS, autoconfig) ports to the internet, 995 only with POP3", () => {
    const publicPorts = (run: Run) =>
      ingress(run)
        .filter((r) => r.inputs.cidrIpv4 === "0.0.0.0/0" || r.inputs.cidrIpv6 === "::/0")
        .map((r) => {
          expect(r.inputs).toEqual(expect.objectContaining({ ipProtocol: "tcp", cidrIpv4: "0.0.0.0/0" }));
          expect(r.inputs.toPort).toBe(r.inputs.fromPort);
          return r.inputs.fromPort as number;
        })
        .sort((a, b) => a - b);
    expect(publicPorts(full)).toEqual([25, 80, 443, 465, 587, 993, 995]);
    expect(publicPorts(x86)).toEqual([25, 80, 443, 465, 587, 993]);
    expect(publicPorts(pinned)).toEqual([25, 80, 443, 465, 587, 993]);
  });

  test("SSH is reachable only from each admin CIDR, never from the whole internet", () => {
    const cases: [Run, { cidrIpv4?: string; cidrIpv6?: string }[]][] = [
      [full, [{ cidrIpv4: "203.0.113.0/24" }]],
      [x86, [{ cidrIpv4: "198.51.100.0/24" }, { cidrIpv6: "2001:db8:1234::/48" }]],
      [pinned, []],
    ];
    for (const [run, expected] of cases) {
      const ssh = ingress(run).filter(coversSsh);
      expect(ssh.map((r) => ({ cidrIpv4: r.inputs.cidrIpv4, cidrIpv6: r.inputs.cidrIpv6 }))).toEqual(
        expected.map((e) => ({ cidrIpv4: e.cidrIpv4, cidrIpv6: e.cidrIpv6 })),
      );
      for (const rule of ssh) {
        expect(rule.inputs).toEqual(expect.objectContaining({ ipProtocol: "tcp", fromPort: 22, toPort: 22 }));
        expect(["0.0.0.0/0", "::/0"]).not.toContain(rule.inputs.cidrIpv4 ?? rule.inputs.cidrIpv6);
      }
    }
  });

  test("every rule belongs to the group, which has no inline rules", () => {
    for (const run of Object.values(runs())) {
      const sg = one(run, T.securityGroup);
      expect(sg.inputs.ingress).toBeUndefined();
      expect(sg.inputs.egress).toBeUndefined();
      for (const rule of [...run.ofType(T.ingress), ...run.ofType(T.egress)]) {
        expect(rule.inputs.securityGroupId).toBe(sg.id);
        expect(rule.inputs.referencedSecurityGroupId).toBeUndefined();
        expect(rule.inputs.prefixListId).toBeUndefined();
      }
    }
  });

  test("egress is limited to the ports the host uses, never all traffic", () => {
    for (const run of Object.values(runs())) {
      const egress = run.ofType(T.egress);
      for (const rule of egress) {
        expect(["tcp", "udp"]).toContain(rule.inputs.ipProtocol);
        expect(rule.inputs.toPort).toBe(rule.inputs.fromPort);
      }
      const allowed = egress.map((r) => `${r.inputs.ipProtocol}/${r.inputs.fromPort}`).sort();
      expect(allowed).toEqual(["tcp/25", "tcp/443", "tcp/53", "tcp/80", "udp/11335", "udp/53"]);
    }
  });
});

describe("instance role", () => {
  const hostRole = (run: Run) => run.named("mail-host-role");
  const hostPolicies = (run: Run) => run.ofType(T.rolePolicy).filter((p) => p.inputs.role === hostRole(run).id);
  const policies = (run: Run): Statement[] => hostPolicies(run).flatMap((p) => statements(p.inputs.policy));
  const arn = (path: string) => `arn:aws:ssm:us-east-1:123456789012:parameter${path}`;

  test("is assumable only by EC2", () => {
    for (const run of Object.values(runs())) {
      const role = hostRole(run);
      const trust = statements(role.inputs.assumeRolePolicy);
      expect(trust).toHaveLength(1);
      expect(trust[0].Effect).toBe("Allow");
      expect(list(trust[0].Action as string | string[])).toEqual(["sts:AssumeRole"]);
      expect(trust[0].Principal).toEqual({ Service: "ec2.amazonaws.com" });
      // The instance profile, the host's three policies and MailMonitoring's hang off this role.
      expect(one(run, T.instanceProfile).inputs.role).toBe(role.state.name);
      expect(hostPolicies(run).map((p) => p.name).sort()).toEqual(["mail-host-backup", "mail-host-parameters", "mail-host-ssm-agent", "mail-monitoring-host-telemetry"]);
    }
  });

  test("has no managed policy (AmazonSSMManagedInstanceCore would grant ssm:GetParameter on *)", () => {
    for (const run of Object.values(runs())) {
      const role = hostRole(run);
      const attachments = run.record.resources.filter(
        (r) => /^aws:iam\/(rolePolicyAttachment|policyAttachment):/.test(r.type) && (r.inputs.role === role.state.name || list(r.inputs.roles).includes(role.state.name)),
      );
      expect(attachments).toEqual([]);
      expect(role.inputs.managedPolicyArns).toBeUndefined();
      const mentions = run.record.resources.flatMap((r) => stringLeaves(r.inputs)).filter((l) => l.value.includes("AmazonSSMManagedInstanceCore"));
      expect(mentions).toEqual([]);
    }
  });

  test("can read parameters only under its own path", () => {
    const readActions = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:GetParameterHistory"];
    const cases: [Run, string][] = [
      [full, "/mailstack/mailstack/test/mail"],
      [x86, CUSTOM_PATH],
      [pinned, "/mailstack/mailstack/test/mail"],
    ];
    for (const [run, path] of cases) {
      const all = policies(run);
      for (const s of all) {
        // Action-only policies keep the analysis below exhaustive; the one Deny is about S3.
        expect(s.NotAction).toBeUndefined();
        expect(s.NotResource).toBeUndefined();
        const actions = list(s.Action);
        if (s.Effect === "Deny") {
          expect(actions.every((a) => a.startsWith("s3:"))).toBe(true);
          continue;
        }
        expect(s.Effect).toBe("Allow");
        const resources = list(s.Resource);
        const grantsRead = actions.some((a) => readActions.some((r) => iamMatches(a, r)));
        if (grantsRead) {
          expect(resources.sort()).toEqual([arn(path), `${arn(path)}/*`].sort());
          // A wildcard resource would reach every parameter in the account.
          expect(resources).not.toContain("*");
        }
      }
      const parameterPolicy = run.named("mail-host-parameters");
      const own = statements(parameterPolicy.inputs.policy);
      const [statement, report] = own;
      expect(list(statement.Resource)).toEqual([arn(path), `${arn(path)}/*`]);
      expect(list(statement.Action).sort()).toEqual(["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"]);
      // It writes its report below status/, and nothing else: not the pointer, not the runtime files.
      expect(report).toEqual({ Sid: "ReportOwnStatus", Effect: "Allow", Action: "ssm:PutParameter", Resource: `${arn(path)}/status/*` });
      expect(allows(own, "ssm:PutParameter", `${arn(path)}/status/host-bundle`)).toBe(true);
      for (const p of run.ofType(T.parameter)) expect({ name: p.inputs.name, writable: allows(own, "ssm:PutParameter", p.state.arn) }).toEqual({ name: p.inputs.name, writable: false });
      // And every parameter of the stack lies within what the role may read.
      for (const p of run.ofType(T.parameter)) {
        expect(list(statement.Resource).some((r) => iamMatches(r, p.state.arn, false))).toBe(true);
      }
    }
  });

  test("allows no action wildcard, nothing of iam or sts, and S3 or KMS only in the backup policy", () => {
    for (const run of Object.values(runs())) {
      for (const policy of hostPolicies(run)) {
        for (const s of statements(policy.inputs.policy).filter((s) => s.Effect === "Allow")) {
          for (const action of list(s.Action)) {
            expect(action).not.toContain("*");
            expect(action).not.toContain("?");
            expect(action).not.toMatch(/^(iam|sts):/i);
            if (/^(s3|kms):/i.test(action)) expect(policy.name).toBe("mail-host-backup");
          }
        }
      }
    }
  });
});
