import { type MailConfig, servicePorts } from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";
import * as ec2 from "@pulumi/aws/ec2";
import * as vpc from "@pulumi/aws/vpc";

/** Arguments of {@link MailFirewall}. */
export interface MailFirewallArgs {
  /** The validated configuration: decides the ports (POP3S, the SES relay's 587 out) and who may reach SSH. */
  readonly config: MailConfig;
  /** VPC of the security group. */
  readonly vpcId: pulumi.Input<string>;
  /** Tags for the security group and its rules. Default none. */
  readonly tags?: Readonly<Record<string, string>>;
}

/** Outbound traffic the host needs, and nothing else. */
const EGRESS: EgressRule[] = [
  { name: "smtp", protocol: "tcp", port: 25, description: "deliver mail to other servers" },
  { name: "http", protocol: "tcp", port: 80, description: "Ubuntu package mirrors" },
  { name: "https", protocol: "tcp", port: 443, description: "SSM, S3, Let's Encrypt, rspamd maps" },
  { name: "dns-udp", protocol: "udp", port: 53, description: "local resolver's recursion" },
  { name: "dns-tcp", protocol: "tcp", port: 53, description: "local resolver's recursion (large answers)" },
  { name: "fuzzy", protocol: "udp", port: 11335, description: "rspamd fuzzy hash checks" },
];

/** With sesOutbound: Postfix relays every outgoing message to SES's SMTP endpoint on the submission port. */
const SES_RELAY_EGRESS: EgressRule = { name: "ses-relay", protocol: "tcp", port: 587, description: "relay outgoing mail through Amazon SES" };

interface EgressRule {
  name: string;
  protocol: "tcp" | "udp";
  port: number;
  description: string;
}

/**
 * The host's security group: the mail ports (and ACME on 80) from anywhere, SSH only
 * from admin CIDRs, and egress limited to what mail delivery (with sesOutbound, SES's port 587
 * too), updates and the resolver use.
 * Each rule is its own resource, so adding one never rewrites the others.
 */
export class MailFirewall extends pulumi.ComponentResource {
  /** The security group; its rules are separate resources (`<name>-in-<port>`, `<name>-out-<purpose>`). */
  readonly securityGroup: ec2.SecurityGroup;
  /** The security group's id, `sg-…`, for MailHost's securityGroupIds. */
  readonly securityGroupId: pulumi.Output<string>;

  constructor(name: string, args: MailFirewallArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mailstack:aws:MailFirewall", name, {}, opts);
    const parent = { parent: this };
    this.securityGroup = new ec2.SecurityGroup(
      `${name}-sg`,
      { vpcId: args.vpcId, description: `mailstack: ${args.config.hostname}`, tags: { ...args.tags, Name: args.config.hostname } },
      parent,
    );
    const securityGroupId = this.securityGroup.id;
    for (const { port, description } of servicePorts(args.config)) {
      new vpc.SecurityGroupIngressRule(
        `${name}-in-${port}`,
        { securityGroupId, ipProtocol: "tcp", fromPort: port, toPort: port, cidrIpv4: "0.0.0.0/0", description, tags: args.tags },
        parent,
      );
    }
    for (const cidr of args.config.adminCidrs) {
      const v6 = cidr.includes(":");
      new vpc.SecurityGroupIngressRule(
        `${name}-in-ssh-${cidr.replace(/[/:.]/g, "-")}`,
        {
          securityGroupId,
          ipProtocol: "tcp",
          fromPort: 22,
          toPort: 22,
          ...(v6 ? { cidrIpv6: cidr } : { cidrIpv4: cidr }),
          description: "SSH from an admin network",
          tags: args.tags,
        },
        parent,
      );
    }
    for (const rule of args.config.ses?.outbound ? [...EGRESS, SES_RELAY_EGRESS] : EGRESS) {
      new vpc.SecurityGroupEgressRule(
        `${name}-out-${rule.name}`,
        {
          securityGroupId,
          ipProtocol: rule.protocol,
          fromPort: rule.port,
          toPort: rule.port,
          cidrIpv4: "0.0.0.0/0",
          description: rule.description,
          tags: args.tags,
        },
        parent,
      );
    }
    this.securityGroupId = securityGroupId;
    this.registerOutputs({ securityGroupId });
  }
}
