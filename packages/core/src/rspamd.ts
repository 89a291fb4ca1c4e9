import { posix } from "node:path";
import type { MailConfig } from "./config";
import { generatedHeader, type HostEnv, PRODUCTION_ENV } from "./layout";

/**
 * rspamd's local.d overrides, by file name. rspamd runs as one milter proxy that scans in
 * process (self_scan), which saves the memory of separate normal workers on a 2 GiB host.
 */
export function rspamdLocalFiles(config: MailConfig, env: HostEnv = PRODUCTION_ENV): Record<string, string> {
  const h = generatedHeader();
  const p = env.paths;
  return {
    "options.inc": `${h}dns {
  # The local validating resolver: DNSBLs refuse the VPC's shared resolver.
  nameserver = ["${env.resolver}:53"];
  timeout = 2s;
  retransmits = 2;
}
`,
    // Its directory (2750 _rspamd:postfix, made by the unit's drop-in) gives the socket Postfix's group.
    "worker-proxy.inc": `${h}bind_socket = "${p.rspamdMilterSocket} mode=0660";
milter = yes;
timeout = 120s;
count = 1;
upstream "local" {
  default = yes;
  self_scan = yes;
}
`,
    // Into the journal, with the mail facility, where the log shipper finds it (and the metric
    // filters count DKIM signing errors and rate-limit refusals); Debian's default is a file.
    "logging.inc": `${h}type = "syslog";
facility = "LOG_MAIL";
`,
    "worker-normal.inc": `${h}# The proxy scans in process; separate scanner processes would only cost memory.
enabled = false;
`,
    // A unix socket is trusted without a password, and no TCP port stays open: only _rspamd
    // (and root) may open it, the learning service included. Debian's controller would
    // otherwise trust all of loopback and take the stock password "q1".
    "worker-controller.inc": `${h}bind_socket = "${p.rspamdControllerSocket} mode=0600";
`,
    "redis.conf": `${h}servers = "${p.redisSocket}";
`,
    "classifier-bayes.conf": `${h}backend = "redis";
autolearn = true;
`,
    // With sesOutbound, SES signs every message with this same key and selector (BYODKIM)
    // after the changes it makes on the way; a signature from here would only be a second one.
    "dkim_signing.conf": `${h}enabled = ${config.ses?.outbound ? "false" : "true"};
# Sign mail from hosted domains only: the selector map lists them (synced from SSM).
selector_map = "${p.runtime}/dkim-selectors";
path = "${p.runtime}/dkim/$selector.key";
use_esld = false;
sign_authenticated = true;
sign_local = true;
allow_username_mismatch = true;
`,
    "milter_headers.conf": `${h}use = ["x-spamd-bar", "x-spam-level", "authentication-results"];
authenticated_headers = ["authentication-results"];
`,
    // rspamd only scores DMARC failures by default; honour what the sending domain asks for.
    "dmarc.conf": `${h}actions {
  quarantine = "add_header";
  reject = "reject";
}
`,
    // Per login, so a stolen password cannot burn the host's address. A bucket leaks one
    // message (recipient) every hour/limit; fixed factors, where rspamd's defaults would let a
    // sender of ham earn ten times its limit over time. A message past it gets 451 4.7.1 and
    // is not queued; rspamd logs 'ratelimit "<name>(...)" exceeded', which monitoring counts.
    "ratelimit.conf": `${h}ham_factor_rate = 1.0;
ham_factor_burst = 1.0;
spam_factor_rate = 1.0;
spam_factor_burst = 1.0;
rates {
${rates(config, "messages")}
${rates(config, "recipients")}
}
`,
    "actions.conf": `${h}reject = 15;
add_header = 6;
greylist = 4;
`,
  };
}

/**
 * rspamd's names of the per-login rates, as its log writes them: `ratelimit "<name>(<what>:<login>)" exceeded`.
 * A login with a limit of its own (a mailbox's sendingLimits) is held by the rate
 * `<name>_<limit>`, e.g. `mailstack_messages_per_hour_500`: a count of the names that start
 * with `<name>` counts every login.
 */
export const RATE_LIMITS = {
  /** Messages a login submitted in the last hour (sendingLimits.messagesPerHour). */
  messages: "mailstack_messages_per_hour",
  /** Recipients of those messages (sendingLimits.recipientsPerHour). */
  recipients: "mailstack_recipients_per_hour",
} as const;

const PER_HOUR = { messages: "messagesPerHour", recipients: "recipientsPerHour" } as const;

// One rate at the stack's limit for every login but those with a limit of their own, and one
// rate for each such limit with its logins: each login falls under exactly one (not_in / in its
// list). Its bucket's key is the same under each, so a changed limit keeps what it has sent.
function rates(config: MailConfig, what: keyof typeof RATE_LIMITS): string {
  const stack = config.sendingLimits[PER_HOUR[what]];
  const own = new Map<number, string[]>();
  for (const m of config.mailboxes) {
    const limit = m.sendingLimits[PER_HOUR[what]];
    if (limit !== stack) own.set(limit, [...(own.get(limit) ?? []), m.address]);
  }
  const limits = [...own.keys()].sort((a, b) => a - b);
  const excepted = config.mailboxes.filter((m) => m.sendingLimits[PER_HOUR[what]] !== stack).map((m) => m.address);
  return [
    rate(what, RATE_LIMITS[what], stack, excepted.length > 0 ? `.not_in(${logins(excepted)})` : ""),
    ...limits.map((limit) => rate(what, `${RATE_LIMITS[what]}_${limit}`, limit, `.in(${logins(own.get(limit) ?? [])})`)),
  ].join("\n");
}

// Each rate's key starts with what it counts: rspamd keys buckets by the selector's value
// alone, so two rates on the bare login would share one bucket.
function rate(what: keyof typeof RATE_LIMITS, name: string, perHour: number, filter: string): string {
  return `  ${name} {
    selector = "id('${what}');user.lower${filter}";
    bucket {
      burst = ${perHour};
      rate = "${perHour} / 1h";
      skip_recipients = ${what === "messages"};
      message = "This mailbox has reached its limit of ${perHour} ${what} an hour; try again later";
    }
  }`;
}

// The arguments of a selector's in()/not_in(), inside a UCL string. rspamd's selector grammar
// has no escapes (a backslash stays in the value) and UCL expands $ in strings, so an address
// is written only when none of its characters needs one; parseConfig allows no others.
function logins(addresses: readonly string[]): string {
  for (const address of addresses) {
    if (!/^[a-z0-9._-]+@[a-z0-9.-]+$/.test(address)) throw new Error(`cannot write the login ${JSON.stringify(address)} in rspamd's ratelimit selector`);
  }
  return addresses.map((address) => `'${address}'`).join(",");
}

/**
 * rspamd.local.lua: a mailbox writes in From: only what Postfix lets it use as the envelope
 * sender (its own address and the aliases that deliver to it, the sender-logins map), so
 * a message the host signs never speaks for another mailbox or hosted domain. Postfix checks
 * only the envelope; the header is what recipients see and DMARC aligns on. With an LDAP
 * directory, a login may also write its own address: a directory user's is in no map here.
 */
export function rspamdLocalLua(env: HostEnv = PRODUCTION_ENV, config?: MailConfig): string {
  return `${generatedHeader("--")}local logins = rspamd_config:add_map({
  type = "hash",
  url = "${env.paths.runtime}/sender-logins",
  description = "mailstack: the logins that may send as each address",
})

rspamd_config:register_symbol({
  name = "${FROM_NOT_OWNED}",
  type = "prefilter",
  score = 0.0,
  description = "An authenticated user wrote a From: address it may not send as",
  callback = function(task)
    local user = task:get_user()
    if not user then return end
    user = user:lower()
    for _, from in ipairs(task:get_from("mime") or {}) do
      local address = (from.addr or ""):lower()
      local owners = logins:get_key(address) or ""
      local owned = ${config?.ldap === undefined ? "false" : "address == user"}
      for login in owners:gmatch("[^,%s]+") do
        if login == user then owned = true end
      end
      if not owned then
        task:insert_result("${FROM_NOT_OWNED}", 1.0, address)
        task:set_pre_result("reject", string.format("From: <%s> is not an address %s may send as", address, user), "mailstack")
        return
      end
    end
  end,
})
`;
}

/** rspamd's symbol, and log word, for a From: header the sender does not own. */
export const FROM_NOT_OWNED = "MAILSTACK_FROM_NOT_OWNED";

/**
 * The command, run by root (`+`) before the daemon starts, that makes the directory of its
 * socket: the directory, not the socket, says who may connect. Neither daemon can give its
 * socket another group itself (each runs as its own user), and none gains a group for it.
 * The directory is below the unit's RuntimeDirectory, so it is made anew at every start.
 */
export function socketDirCommand(socket: string, owner: string, group: string): string {
  // setgid: the socket inside gets the directory's group, the one client's.
  return `+/usr/bin/install -d -o ${owner} -g ${group} -m 2750 ${posix.dirname(socket)}`;
}

/** redis-server's listener after its config file: no TCP port, the socket only rspamd reaches. */
export function redisListenArgs(env: HostEnv = PRODUCTION_ENV): string[] {
  return ["--port", "0", "--unixsocket", env.paths.redisSocket, "--unixsocketperm", "660"];
}

/** Unbound as a local DNSSEC-validating recursive resolver for Postfix (DANE) and rspamd (RBLs). */
export function unboundConf(env: HostEnv = PRODUCTION_ENV): string {
  return `${generatedHeader()}server:
  interface: ${env.resolver}
  port: 53
  access-control: 127.0.0.0/8 allow
  # Debian's and Ubuntu's builds add the EDNS client-subnet cache, which a local resolver
  # does not need and which disables prefetching.
  module-config: "validator iterator"
  do-ip6: no
  hide-identity: yes
  hide-version: yes
  qname-minimisation: yes
  harden-dnssec-stripped: yes
  prefetch: yes
  num-threads: 1
  msg-cache-size: 16m
  rrset-cache-size: 32m
`;
}
