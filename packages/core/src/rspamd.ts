import { generatedHeader, type HostEnv, PRODUCTION_ENV } from "./layout";

/**
 * rspamd's local.d overrides, by file name. rspamd runs as one milter proxy that scans in
 * process (self_scan), which saves the memory of separate normal workers on a 2 GiB host.
 */
export function rspamdLocalFiles(env: HostEnv = PRODUCTION_ENV): Record<string, string> {
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
    "worker-proxy.inc": `${h}bind_socket = "${p.rspamdMilterSocket} mode=0666 owner=_rspamd";
milter = yes;
timeout = 120s;
count = 1;
upstream "local" {
  default = yes;
  self_scan = yes;
}
`,
    "worker-normal.inc": `${h}# The proxy scans in process; separate scanner processes would only cost memory.
enabled = false;
`,
    "redis.conf": `${h}servers = "127.0.0.1:6379";
`,
    "classifier-bayes.conf": `${h}backend = "redis";
autolearn = true;
`,
    "dkim_signing.conf": `${h}enabled = true;
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
    "actions.conf": `${h}reject = 15;
add_header = 6;
greylist = 4;
`,
  };
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
