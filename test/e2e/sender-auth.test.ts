/**
 * Mail sent by the rendered host passes SPF, DKIM and DMARC when a verifier we did not write
 * (mailauth) checks it against exactly the zones the core exports, served by a real
 * authoritative server (Knot DNS); and DKIM key rotation leaves no mail unverifiable.
 *
 * The messages go through the real pipeline (submission on 587, rspamd signing, LMTP) and
 * are read back over IMAPS as delivered: the signature and signed headers are those that
 * leave the host. The verifier is told they arrived from HOST_IP, the mail host's address in
 * the zones (its A record), with the host's HELO name and the envelope sender.
 */
import { dkimPublicKeyFromPem, dnsRecords, dnsZones, type MailConfigInput, parseConfig, zoneFile } from "@mailstack/core";
import { authenticate } from "mailauth";
import { AuthoritativeDns } from "../support/dns-server";
import { type DkimKeyPair, HOST_IP, message, newDkimKey, source, TestStack } from "../support/stack";
import { requireRoot, requireTools } from "../support/tools";

requireTools("knotd", "dig", "ip");
requireRoot("the stack runs in a network namespace of its own");

const BASE: MailConfigInput = {
  domain: "example.com",
  extraDomains: ["example.org"],
  mailboxes: [
    { address: "alice@example.com", password: "first long test passphrase", aliases: ["alice@example.org"] },
    { address: "bob@example.com", password: "second long test passphrase" },
  ],
};
/** The three `pulumi up` steps of a rotation from selector a to selector b. */
const STAGES = {
  // 1: b is published beside a; a still signs.
  publish: { ...BASE, dkimSelector: "a", dkimNextSelector: "b" },
  // 2: b signs; a stays published for mail signed before the switch.
  switch: { ...BASE, dkimSelector: "b", dkimPreviousSelector: "a" },
  // 3: a is retired.
  retire: { ...BASE, dkimSelector: "b" },
} satisfies Record<string, MailConfigInput>;
const KEYS: Record<string, DkimKeyPair> = { a: newDkimKey(), b: newDkimKey() };
const HOSTNAME = parseConfig(BASE).hostname;
const BODY = "Minutes of the planning meeting: budget review, hiring timeline, office move, quarterly targets and the customer survey results.\n";
/** A server the zones' SPF records do not name. */
const ELSEWHERE = "203.0.113.77";

/** The zone files the core exports for a config, with the test keys and the host at HOST_IP. */
function exportedZones(input: MailConfigInput): Record<string, string> {
  const config = parseConfig(input);
  const dkimPublicKeys = Object.fromEntries(config.dkimSelectors.map((s) => [s, dkimPublicKeyFromPem(KEYS[s].publicKey)]));
  const records = dnsRecords(config, { ipv4: HOST_IP, dkimPublicKeys });
  return Object.fromEntries(dnsZones(config).map((zone) => [zone, zoneFile(zone, records)]));
}

const dns: Partial<Record<keyof typeof STAGES, AuthoritativeDns>> = {};
let stack: TestStack | undefined;
let nextSource = 10;
/** Messages as delivered, by what they are. */
const sent: Record<"signedByA" | "fromExampleOrg" | "signedByB", string> = { signedByA: "", fromExampleOrg: "", signedByB: "" };

/** Submits a message on 587 as alice, to bob, and returns it as bob's mailbox received it. */
async function sendThroughHost(s: TestStack, from: string, subject: string): Promise<string> {
  const user = "alice@example.com";
  const auth = `AUTH PLAIN ${Buffer.from(`\0${user}\0${s.password(user)}`).toString("base64")}`;
  const r = await s.smtp({
    port: 587,
    source: source(nextSource++),
    steps: ["EHLO client.example.net", { starttls: true }, "EHLO client.example.net", auth, `MAIL FROM:<${from}>`, "RCPT TO:<bob@example.com>", { data: message(from, "bob@example.com", subject, BODY) }, "QUIT"],
  });
  if (!/\n250 /.test(r.replies[6]?.reply ?? "")) throw new Error(`submission refused: ${JSON.stringify(r.replies)}`);
  let got: string | undefined;
  await s.until(`"${subject}" in bob's inbox`, async () => {
    got = (await s.messages("bob@example.com")).find((m) => m.source.includes(`Subject: ${subject}`))?.source;
    return got !== undefined;
  });
  return got!;
}

beforeAll(async () => {
  for (const stage of Object.keys(STAGES) as (keyof typeof STAGES)[]) dns[stage] = await AuthoritativeDns.start(exportedZones(STAGES[stage]));
  stack = await TestStack.start(STAGES.publish, { dkimKeys: KEYS });
  sent.signedByA = await sendThroughHost(stack, "alice@example.com", "signed while a signs");
  sent.fromExampleOrg = await sendThroughHost(stack, "alice@example.org", "from the extra domain");
  await stack.stop();
  stack = await TestStack.start(STAGES.switch, { dkimKeys: KEYS });
  sent.signedByB = await sendThroughHost(stack, "alice@example.com", "signed once b signs");
  await stack.stop();
  stack = undefined;
}, 600000);
afterAll(async () => {
  await stack?.stop();
  for (const server of Object.values(dns)) await server?.stop();
});

/** mailauth's verdicts on a message received from `ip`, looking up only the stage's zones. */
async function verify(raw: string, stage: keyof typeof STAGES, options: { ip?: string; sender?: string } = {}) {
  const result = await authenticate(raw, {
    ip: options.ip ?? HOST_IP,
    helo: HOSTNAME,
    sender: options.sender ?? "alice@example.com",
    mta: "mx.receiver.example",
    resolver: dns[stage]!.resolver(),
    disableBimi: true,
  });
  const dmarc = result.dmarc || undefined;
  return {
    spf: result.spf && { result: result.spf.status.result, domain: result.spf.domain },
    dkim: result.dkim.results.map((r: any) => ({ domain: r.signingDomain, selector: r.selector, result: r.status.result, aligned: r.status.aligned, comment: r.status.comment })),
    // mailauth names the aligned domain of each identifier, and leaves it unset when no
    // passing identifier aligns.
    dmarc: dmarc && { result: dmarc.status.result, policy: dmarc.policy, spfAligned: dmarc.alignment.spf.result, dkimAligned: dmarc.alignment.dkim.result, strict: [dmarc.alignment.spf.strict, dmarc.alignment.dkim.strict] },
  };
}

describe("SPF, DKIM and DMARC of mail the host sends, checked by mailauth against the exported zones", () => {
  test("a message submitted on 587 passes SPF, DKIM and DMARC for example.com, aligned both ways", async () => {
    expect(await verify(sent.signedByA, "publish")).toEqual({
      spf: { result: "pass", domain: "example.com" },
      dkim: [{ domain: "example.com", selector: "a", result: "pass", aligned: "example.com", comment: undefined }],
      dmarc: { result: "pass", policy: "quarantine", spfAligned: "example.com", dkimAligned: "example.com", strict: [false, false] },
    });
  });

  test("so does one sent from the extra domain, signed by it", async () => {
    expect(await verify(sent.fromExampleOrg, "publish", { sender: "alice@example.org" })).toEqual({
      spf: { result: "pass", domain: "example.org" },
      dkim: [{ domain: "example.org", selector: "a", result: "pass", aligned: "example.org", comment: undefined }],
      dmarc: { result: "pass", policy: "quarantine", spfAligned: "example.org", dkimAligned: "example.org", strict: [false, false] },
    });
  });

  // A signature that does not verify still names its domain as aligned with From (mailauth
  // reports identifier alignment per signature); DMARC counts only passing ones.
  test("a body altered after signing fails DKIM; DMARC still passes on SPF, which the host's address satisfies", async () => {
    const altered = sent.signedByA.replace("budget review", "budget rev1ew");
    expect(altered).not.toBe(sent.signedByA);
    expect(await verify(altered, "publish")).toEqual({
      spf: { result: "pass", domain: "example.com" },
      dkim: [{ domain: "example.com", selector: "a", result: "neutral", aligned: "example.com", comment: "body hash did not verify" }],
      dmarc: { result: "pass", policy: "quarantine", spfAligned: "example.com", dkimAligned: undefined, strict: [false, false] },
    });
  });

  test("from an address outside SPF, the intact message fails SPF and passes DMARC on its signature alone", async () => {
    // What a forwarder produces: DMARC needs only one aligned pass.
    expect(await verify(sent.signedByA, "publish", { ip: ELSEWHERE })).toEqual({
      spf: { result: "fail", domain: "example.com" },
      dkim: [{ domain: "example.com", selector: "a", result: "pass", aligned: "example.com", comment: undefined }],
      dmarc: { result: "pass", policy: "quarantine", spfAligned: undefined, dkimAligned: "example.com", strict: [false, false] },
    });
  });

  test("from an address outside SPF, an altered message fails SPF, DKIM and DMARC", async () => {
    const altered = sent.signedByA.replace("budget review", "budget rev1ew");
    expect(await verify(altered, "publish", { ip: ELSEWHERE })).toEqual({
      spf: { result: "fail", domain: "example.com" },
      dkim: [{ domain: "example.com", selector: "a", result: "neutral", aligned: "example.com", comment: "body hash did not verify" }],
      dmarc: { result: "fail", policy: "quarantine", spfAligned: undefined, dkimAligned: undefined, strict: [false, false] },
    });
  });

  test("from an address outside SPF, a forgery the host never signed fails SPF and DMARC", async () => {
    const forged = message("alice@example.com", "bob@example.com", "forged", BODY);
    expect(await verify(forged, "publish", { ip: ELSEWHERE })).toEqual({
      spf: { result: "fail", domain: "example.com" },
      dkim: [{ domain: undefined, selector: undefined, result: "none", aligned: undefined, comment: "message not signed" }],
      dmarc: { result: "fail", policy: "quarantine", spfAligned: undefined, dkimAligned: undefined, strict: [false, false] },
    });
  });
});

describe("DKIM rotation: during the overlap mail signed with either selector verifies", () => {
  test("each stage's host signed with its signing selector", () => {
    const selector = (raw: string) => raw.match(/^DKIM-Signature:[^]*?\bs=(\w+);/m)?.[1];
    expect(selector(sent.signedByA)).toBe("a");
    expect(selector(sent.signedByB)).toBe("b");
  });

  test("against the zones of the switch (b signs, a kept), mail signed by a and by b both pass", async () => {
    const a = await verify(sent.signedByA, "switch");
    const b = await verify(sent.signedByB, "switch");
    expect(a.dkim).toEqual([{ domain: "example.com", selector: "a", result: "pass", aligned: "example.com", comment: undefined }]);
    expect(b.dkim).toEqual([{ domain: "example.com", selector: "b", result: "pass", aligned: "example.com", comment: undefined }]);
    expect([a.dmarc, b.dmarc]).toEqual([
      { result: "pass", policy: "quarantine", spfAligned: "example.com", dkimAligned: "example.com", strict: [false, false] },
      { result: "pass", policy: "quarantine", spfAligned: "example.com", dkimAligned: "example.com", strict: [false, false] },
    ]);
  });

  test("once a is retired, mail signed by a fails DKIM while mail signed by b still passes", async () => {
    const a = await verify(sent.signedByA, "retire");
    const b = await verify(sent.signedByB, "retire");
    expect(a.dkim).toEqual([{ domain: "example.com", selector: "a", result: "neutral", aligned: "example.com", comment: "no key" }]);
    expect(b.dkim).toEqual([{ domain: "example.com", selector: "b", result: "pass", aligned: "example.com", comment: undefined }]);
    // Straight from the host, SPF still carries DMARC for a's mail; forwarded, it would fail:
    // why a stays published for a while after the switch.
    expect(a.dmarc).toEqual({ result: "pass", policy: "quarantine", spfAligned: "example.com", dkimAligned: undefined, strict: [false, false] });
    expect((await verify(sent.signedByA, "retire", { ip: ELSEWHERE })).dmarc).toMatchObject({ result: "fail" });
  });
});
