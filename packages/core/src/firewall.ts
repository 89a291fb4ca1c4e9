import type { MailConfig } from "./config";
import { generatedHeader, type HostEnv, POSTSRSD, PRODUCTION_ENV } from "./layout";

/** The one user whose processes may query PostSRSd: Postfix's (smtpd, cleanup, lmtp). */
export const POSTSRSD_CLIENT = "postfix";

/** Client-facing TCP ports the host serves, with what each is for. */
export function servicePorts(
  config: MailConfig,
  env: HostEnv = PRODUCTION_ENV,
): {
  /** The TCP port. */
  port: number;
  /** What it serves, for the security group rule's description. */
  description: string;
}[] {
  return [
    { port: env.ports.smtp, description: "SMTP from other mail servers" },
    { port: env.ports.submissions, description: "submission over implicit TLS" },
    { port: env.ports.submission, description: "submission with STARTTLS" },
    { port: env.ports.imaps, description: "IMAP over TLS" },
    ...(config.pop3 ? [{ port: env.ports.pop3s, description: "POP3 over TLS" }] : []),
    { port: 80, description: "ACME HTTP-01 challenges for the certificate" },
    { port: 443, description: "MTA-STS policy and mail-client autoconfiguration (HTTPS)" },
  ];
}

/** Runtime directory file, included by nftables.conf, that fills the SSH source sets. */
export const NFT_ADMIN_FILE = "nftables-admin.nft";

/**
 * The SSH sources for the host firewall, as nft commands adding to nftables.conf's sets. A
 * runtime file (synced from SSM), so that changing admin CIDRs never replaces the instance.
 */
export function nftablesAdmin(config: MailConfig): string {
  const v4 = config.adminCidrs.filter((c) => !c.includes(":"));
  const v6 = config.adminCidrs.filter((c) => c.includes(":"));
  return [
    "# Sources allowed to reach SSH (adminCidrs); none means SSH is closed.",
    ...(v4.length ? [`add element inet mailstack admin_v4 { ${v4.join(", ")} }`] : []),
    ...(v6.length ? [`add element inet mailstack admin_v6 { ${v6.join(", ")} }`] : []),
  ]
    .map((l) => `${l}\n`)
    .join("");
}

/**
 * /etc/nftables.conf: drop inbound except the mail ports, ICMP and replies; limit the rate of
 * new connections per source. It owns only its own table, so reloading it leaves
 * fail2ban's table and bans alone. SSH sources come from the runtime directory.
 */
export function nftablesConf(config: MailConfig, env: HostEnv = PRODUCTION_ENV): string {
  const limited = (name: string, ports: number[], perMinute: number) => [
    `    tcp dport { ${ports.join(", ")} } ct state new add @${name}_v4 { ip saddr limit rate over ${perMinute}/minute burst ${perMinute * 2} packets } drop`,
    `    tcp dport { ${ports.join(", ")} } ct state new add @${name}_v6 { ip6 saddr limit rate over ${perMinute}/minute burst ${perMinute * 2} packets } drop`,
  ];
  const sets = (name: string) =>
    ["ipv4_addr", "ipv6_addr"].map(
      (type) => `  set ${name}_${type === "ipv4_addr" ? "v4" : "v6"} {
    type ${type}
    size 65536
    flags dynamic, timeout
    timeout 10m
  }`,
    );
  const imapPorts = [env.ports.imaps, ...(config.pop3 ? [env.ports.pop3s] : [])];
  const open = servicePorts(config, env).map((p) => p.port);
  return `#!/usr/sbin/nft -f
${generatedHeader()}
table inet mailstack
delete table inet mailstack

table inet mailstack {
  set admin_v4 {
    type ipv4_addr
    flags interval
  }
  set admin_v6 {
    type ipv6_addr
    flags interval
  }
${[...sets("smtp"), ...sets("submission"), ...sets("mailbox")].join("\n")}

  chain input {
    type filter hook input priority filter; policy drop;
    iif "lo" accept
    ct state invalid drop
    ct state established,related accept
    ip protocol icmp icmp type { echo-request, destination-unreachable, time-exceeded } limit rate 20/second accept
    ip6 nexthdr icmpv6 icmpv6 type { echo-request, destination-unreachable, packet-too-big, time-exceeded, parameter-problem, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept
    udp sport 67 udp dport 68 accept
    ip saddr @admin_v4 tcp dport 22 accept
    ip6 saddr @admin_v6 tcp dport 22 accept
${[
    ...limited("smtp", [env.ports.smtp], 60),
    ...limited("submission", [env.ports.submission, env.ports.submissions], 30),
    ...limited("mailbox", imapPorts, 60),
  ].join("\n")}
    tcp dport { ${open.join(", ")} } accept
  }

  chain forward {
    type filter hook forward priority filter; policy drop;
  }

  # PostSRSd's tables sign SRS addresses (a valid one makes the host relay its bounces) on
  # loopback TCP, its only transport: for Postfix's processes alone, not any other local one.${
    config.ses?.inbound
      ? `
  # The SES importer's smtpd believes whatever client XCLIENT names: for the importer (root) alone.`
      : ""
  }
  chain output {
    type filter hook output priority filter; policy accept;
    oifname "lo" tcp dport { ${POSTSRSD.forwardPort}, ${POSTSRSD.reversePort} } meta skuid != "${POSTSRSD_CLIENT}" reject with tcp reset${
      config.ses?.inbound
        ? `
    oifname "lo" tcp dport ${env.ports.sesImport} meta skuid != "root" reject with tcp reset`
        : ""
    }
  }
}

# A glob: a missing file is not an error, and the sets then stay empty.
include "${env.paths.runtime}/${NFT_ADMIN_FILE.replace(".nft", "*.nft")}"
`;
}

/**
 * fail2ban jails. Lenient on purpose (20 failures in 30 minutes): phones retrying an old
 * password must not lock their owners out, while brute force still gets banned, and
 * repeat offenders get a week from the recidive jail. Nothing here depends on the admin
 * CIDRs, which may change without replacing the host; the sshd jail simply sees no
 * traffic while SSH is closed.
 */
export function fail2banJails(config: MailConfig, env: HostEnv = PRODUCTION_ENV): string {
  const mailPorts = [env.ports.smtp, env.ports.submission, env.ports.submissions, env.ports.imaps, ...(config.pop3 ? [env.ports.pop3s] : [])].join(",");
  return `${generatedHeader()}
[DEFAULT]
backend = systemd
banaction = nftables[type=multiport]
banaction_allports = nftables[type=allports]
bantime = 1h
findtime = 30m
maxretry = 20
ignoreip = 127.0.0.1/8 ::1

[postfix-sasl]
enabled = true
# Debian's and Ubuntu's Postfix runs in postfix@-.service; fail2ban 1.0.2's filter matches
# only postfix.service (fixed upstream in 1.1.0, fail2ban/fail2ban#3692).
filter = postfix[mode=auth, journalmatch="_SYSTEMD_UNIT=postfix.service _SYSTEMD_UNIT=postfix@-.service"]
port = ${mailPorts}

[dovecot]
enabled = true
port = ${mailPorts}

[sshd]
enabled = true
maxretry = 5

[recidive]
enabled = true
backend = auto
logpath = /var/log/fail2ban.log
banaction = nftables[type=allports]
bantime = 1w
findtime = 1d
maxretry = 5
`;
}
