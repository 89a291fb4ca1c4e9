/**
 * What DNS should hold, from the plan's records, compared with what it holds. Pure: the
 * answers come in, verdicts go out.
 */
import { type DnsRecord, txtValue } from "@mailstack/core";
import { type Lookup, normalName, type QueryType } from "./check-dns";
import { verdict, type Verdict } from "./check-verdict";

/** A record in the form the DNS client gives answers in (see check-dns.ts). */
export function canonicalRecord(r: DnsRecord): string {
  switch (r.data?.kind) {
    case "SRV":
      return `${r.data.priority} ${r.data.weight} ${r.data.port} ${normalName(r.data.target)}`;
    case "CAA":
      return `${r.data.flags} ${r.data.tag} "${r.data.value}"`;
    case "TLSA":
      return `${r.data.usage} ${r.data.selector} ${r.data.matchingType} ${r.data.certificate.toLowerCase()}`;
  }
  if (r.type === "MX") return `${r.priority ?? 10} ${normalName(r.content)}`;
  if (r.type === "CNAME") return normalName(r.content);
  if (r.type === "TXT") return txtValue(r.content);
  return r.content;
}

/** The records the plan puts at one name and type. */
export interface RecordSet {
  name: string;
  type: QueryType;
  records: DnsRecord[];
  /**
   * TXT at a zone's apex, where the operator keeps values of their own (site verifications
   * and the like): each planned value must be there, the others are not the plan's.
   */
  shared: boolean;
}

export function recordSets(records: DnsRecord[]): RecordSet[] {
  const sets = new Map<string, RecordSet>();
  for (const r of records) {
    const name = normalName(r.name);
    const key = `${r.type} ${name}`;
    const set = sets.get(key) ?? { name, type: r.type, records: [], shared: r.type === "TXT" && name === normalName(r.zone) };
    set.records.push(r);
    sets.set(key, set);
  }
  return [...sets.values()];
}

const isSpf = (value: string) => /^v=spf1(\s|$)/i.test(value);
const list = (values: string[]) => (values.length === 0 ? "nothing" : values.join(" | "));

/** What an answer that holds no records of the type says, for the report. */
function emptyAnswer(lookup: Lookup): string {
  if (lookup.rcode === "NXDOMAIN") return "nothing (NXDOMAIN: the name does not exist)";
  if (lookup.rcode === "NOERROR") return "nothing (the name has no record of this type)";
  return `no answer (${lookup.rcode})`;
}

/** One verdict per planned record set; on a shared name, one per planned value. */
export function compareRecordSet(set: RecordSet, lookup: Lookup): Verdict[] {
  const found = lookup.values;
  const answered = lookup.rcode === "NOERROR" || lookup.rcode === "NXDOMAIN";
  const foundText = found.length > 0 ? list(found) : emptyAnswer(lookup);
  if (set.shared) {
    return set.records.map((r) => {
      const want = canonicalRecord(r);
      const id = `dns:TXT:${set.name}:${r.key}`;
      const check = `TXT ${set.name} (${isSpf(want) ? "SPF" : r.comment})`;
      if (!answered) return verdict(id, check, "fail", want, foundText);
      if (isSpf(want)) {
        // RFC 7208 §4.5: a second v=spf1 record makes every SPF check a permerror.
        const spf = found.filter(isSpf);
        if (spf.length === 1 && spf[0] === want) return verdict(id, check, "ok", want, want);
        const why = spf.length > 1 ? `${spf.length} SPF records (receivers treat that as a permanent error): ` : "";
        return verdict(id, check, "fail", want, spf.length === 0 ? foundText : `${why}${list(spf)}`);
      }
      return found.includes(want) ? verdict(id, check, "ok", want, want) : verdict(id, check, "fail", want, foundText);
    });
  }
  const want = set.records.map(canonicalRecord);
  const id = `dns:${set.type}:${set.name}`;
  const check = `${set.type} ${set.name}`;
  const missing = want.filter((v) => !found.includes(v));
  const extra = found.filter((v) => !want.includes(v));
  if (answered && missing.length === 0 && extra.length === 0) return [verdict(id, check, "ok", list(want), list(found))];
  if (!answered || found.length === 0) return [verdict(id, check, "fail", list(want), foundText)];
  const problems = [missing.length > 0 ? `missing ${list(missing)}` : "", extra.length > 0 ? `not planned ${list(extra)}` : ""].filter(Boolean);
  return [verdict(id, check, "fail", list(want), `${problems.join("; ")} (all: ${list(found)})`)];
}
