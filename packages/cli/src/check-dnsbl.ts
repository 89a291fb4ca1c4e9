/**
 * Spamhaus: ZEN for the host's address, DBL for each domain, with the return codes Spamhaus
 * documents for its public mirrors.
 */
import { type DnsClient, type Lookup, reversedOctets } from "./check-dns";
import { verdict, type Verdict } from "./check-verdict";

export const ZEN_ZONE = "zen.spamhaus.org";
export const DBL_ZONE = "dbl.spamhaus.org";

/**
 * Answers with which Spamhaus refuses the query itself. They say nothing about the address
 * or domain, so they must never read as "not listed".
 */
const REFUSALS: Record<string, string> = {
  "127.255.255.252": "typing error in the DNSBL name",
  "127.255.255.254": "query through a public or open resolver, which Spamhaus does not answer",
  "127.255.255.255": "excessive number of queries from this resolver",
};

export const ZEN_CODES: Record<string, string> = {
  "127.0.0.2": "SBL: Spamhaus Block List (known spam source)",
  "127.0.0.3": "SBL CSS: snowshoe spam sender",
  "127.0.0.4": "XBL/CBL: exploited host (malware, open proxy)",
  "127.0.0.9": "SBL DROP: hijacked network",
  // Receivers that use ZEN reject PBL addresses too: an address that should not send mail directly.
  "127.0.0.10": "PBL (ISP-maintained): address not meant to send mail directly",
  "127.0.0.11": "PBL (Spamhaus-maintained): address not meant to send mail directly",
};

export const DBL_CODES: Record<string, string> = {
  "127.0.1.2": "spam domain",
  "127.0.1.4": "phishing domain",
  "127.0.1.5": "malware domain",
  "127.0.1.6": "botnet C&C domain",
  "127.0.1.102": "abused legitimate spam domain",
  "127.0.1.103": "abused spammed redirector domain",
  "127.0.1.104": "abused legitimate phishing domain",
  "127.0.1.105": "abused legitimate malware domain",
  "127.0.1.106": "abused legitimate botnet C&C domain",
};

/**
 * The verdict on one DNSBL answer. A refusal or a failed lookup is a warning ("could not
 * check"), not a failure: the listing is unknown rather than known bad, and the usual cause
 * is the resolver the check ran through (a public one), which says nothing about the mail
 * service. `--strict` turns it into a failure for those who need the answer.
 */
export function dnsblVerdict(id: string, check: string, lookup: Lookup, codes: Record<string, string>): Verdict {
  const expected = "not listed (NXDOMAIN)";
  if (lookup.rcode === "NXDOMAIN" || (lookup.rcode === "NOERROR" && lookup.values.length === 0)) return verdict(id, check, "ok", expected, "not listed");
  if (lookup.rcode !== "NOERROR") return verdict(id, check, "warn", expected, `could not check: the lookup failed (${lookup.rcode})`);
  const refusals = lookup.values.filter((v) => REFUSALS[v]);
  if (refusals.length > 0) {
    return verdict(id, check, "warn", expected, `could not check: Spamhaus refused the query, ${refusals.map((v) => `${v} (${REFUSALS[v]})`).join(", ")}; use your own resolver (--resolver)`);
  }
  const listings = lookup.values.filter((v) => v.startsWith("127."));
  if (listings.length === 0) return verdict(id, check, "warn", expected, `could not check: unexpected answer ${lookup.values.join(", ")}`);
  return verdict(id, check, "fail", expected, `listed: ${listings.map((v) => `${v} ${codes[v] ?? "(code not documented)"}`).join("; ")}`);
}

export async function checkDnsbl(dns: DnsClient, address: string, domains: string[], zones: { zen: string; dbl: string }): Promise<Verdict[]> {
  const zen = dns.query(`${reversedOctets(address)}.${zones.zen}`, "A").then((l) => dnsblVerdict(`dnsbl:zen:${address}`, `Spamhaus ZEN ${address}`, l, ZEN_CODES));
  const dbl = domains.map((d) => dns.query(`${d}.${zones.dbl}`, "A").then((l) => dnsblVerdict(`dnsbl:dbl:${d}`, `Spamhaus DBL ${d}`, l, DBL_CODES)));
  return Promise.all([zen, ...dbl]);
}
