// MailStack in infrastructure that already exists: a VPC and public subnet you manage
// elsewhere, Cloudflare zones given by id (so the API token needs no permission to list
// zones), and a pinned AMI (so a plan never looks one up and the image changes only when you
// change the id).
import { MailStack } from "@mailstack/pulumi";
import * as pulumi from "@pulumi/pulumi";

const config = new pulumi.Config();
const domain = config.require("domain");

const mail = new MailStack("mail", {
  domain,
  mailboxes: [{ address: `admin@${domain}`, password: config.requireSecret("adminPassword") }],

  // The subnet decides where the host runs: its availability zone is read from the subnet
  // (do not also set availabilityZone), and the data volume is created in the same zone.
  // It must be a public subnet, with a route to an internet gateway.
  subnetId: config.require("subnetId"),
  // Optional: without it the VPC is the subnet's own. The security group is created here.
  vpcId: config.get("vpcId") || undefined,

  // Zone id by domain; a domain left out would be looked up by name instead.
  cloudflareZoneIds: config.requireObject<Record<string, string>>("cloudflareZoneIds"),

  // An Ubuntu 24.04 image of the instance type's architecture (arm64 for the default
  // t4g.small). With a pinned id, changing it replaces the instance; the data volume and
  // the Elastic IP carry over.
  amiId: config.require("amiId"),

  tags: { project: "mail", network: "shared-vpc" },
});

export const hostname = mail.hostname;
export const publicIp = mail.publicIp;
export const instanceId = mail.instanceId;
export const availabilityZone = mail.host.dataVolume.availabilityZone;
export const securityGroupId = mail.firewall.securityGroupId;
export const nextSteps = mail.nextSteps;
