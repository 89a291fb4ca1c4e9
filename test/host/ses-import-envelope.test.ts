// What mailstack-ses-import takes from a stored message's headers, which strangers wrote: the
// envelope sender from SES's Return-Path, and the client from SES's own Received header only
// (the topmost, by SES's receiving host of the stack's region), never anything that could
// end or add an SMTP command.
import { join } from "node:path";
import { requireTools, runOk } from "../support/tools";

requireTools("python3");

const SCRIPT = join(__dirname, "..", "..", "packages", "core", "scripts", "mailstack-ses-import.py");
const SES = "inbound-smtp.eu-west-1.amazonaws.com";

interface Envelope {
  sender?: string;
  client?: Record<string, string> | null;
  error?: string;
}

/** The script's envelope() of each header block (CRLF, a body appended), in region eu-west-1. */
function envelopes(headers: string[]): Envelope[] {
  const program = `
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("importer", sys.argv[1])
importer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(importer)
out = []
for block in json.load(sys.stdin):
    try:
        sender, client = importer.envelope(block.encode("utf-8", "surrogateescape"), "eu-west-1")
        out.append({"sender": sender, "client": client})
    except ValueError as problem:
        out.append({"error": str(problem)})
print(json.dumps(out))
`;
  const blocks = headers.map((h) => `${h}\r\nSubject: test\r\n\r\nbody\r\n`.replace(/\r?\n/g, "\r\n"));
  return JSON.parse(runOk("/usr/bin/python3", ["-B", "-c", program, SCRIPT], { input: JSON.stringify(blocks) }).stdout) as Envelope[];
}

const received = (from: string, by = SES) => `Received: from ${from}\r\n by ${by} with SMTP id abc123\r\n for alice@example.com;\r\n Mon, 07 Dec 2026 18:40:15 +0000 (UTC)`;

test("the sender is the Return-Path's address, or the null sender when it is empty or missing", () => {
  const [plain, bare, empty, missing] = envelopes([
    `Return-Path: <news@outside.example>\r\n${received("mx.outside.example (mx.outside.example [198.51.100.20])")}`,
    `Return-Path: news@outside.example\r\n${received("mx.outside.example (mx.outside.example [198.51.100.20])")}`,
    `Return-Path: <>\r\n${received("mx.outside.example (mx.outside.example [198.51.100.20])")}`,
    received("mx.outside.example (mx.outside.example [198.51.100.20])"),
  ]);
  expect(plain).toEqual({ sender: "news@outside.example", client: { NAME: "mx.outside.example", ADDR: "198.51.100.20", HELO: "mx.outside.example" } });
  expect(bare.sender).toBe("news@outside.example");
  expect(empty.sender).toBe("");
  expect(missing.sender).toBe("");
});

test("a Return-Path that would put more than an address into MAIL FROM is refused", () => {
  const refused = envelopes([
    "Return-Path: <a@example.net> SIZE=1",
    "Return-Path: <a@example.net>\r\n RCPT TO:<victim@example.com>",
    "Return-Path: <a b@example.net>",
    "Return-Path: <caf\u00e9@example.net>",
  ]);
  for (const r of refused) expect(r.error).toMatch(/^its Return-Path .* is no address Postfix could be given$/);
});

test("the client is taken from the topmost Received header, and only when SES's receiving host of the region wrote it", () => {
  const [folded, v6, noName, unknown, otherRegion, otherHost, notTopmost, badAddress, oddHelo, none] = envelopes([
    received("mail-wr1-f54.google.com (mail-wr1-f54.google.com [209.85.221.54])"),
    received("mx6.example.net (mx6.example.net [IPv6:2001:db8::25])"),
    received("[198.51.100.7] ([198.51.100.7])"),
    received("helo.example (unknown [198.51.100.8])"),
    received("mx.outside.example (mx.outside.example [198.51.100.20])", "inbound-smtp.us-east-1.amazonaws.com"),
    received("mx.outside.example (mx.outside.example [198.51.100.20])", "mx.attacker.example"),
    `Received: from laptop (laptop [10.0.0.5]) by mx.outside.example;\r\n${received("mx.outside.example (mx.outside.example [198.51.100.20])")}`,
    received("mx.outside.example (mx.outside.example [198.51.100.300])"),
    received("caf\u00e9 (mx.outside.example [198.51.100.20])"),
    "Return-Path: <a@example.net>",
  ]);
  expect(folded.client).toEqual({ NAME: "mail-wr1-f54.google.com", ADDR: "209.85.221.54", HELO: "mail-wr1-f54.google.com" });
  expect(v6.client).toEqual({ NAME: "mx6.example.net", ADDR: "2001:db8::25", HELO: "mx6.example.net" });
  expect(noName.client).toEqual({ NAME: "[UNAVAILABLE]", ADDR: "198.51.100.7", HELO: "[198.51.100.7]" });
  expect(unknown.client).toEqual({ NAME: "[UNAVAILABLE]", ADDR: "198.51.100.8", HELO: "helo.example" });
  for (const r of [otherRegion, otherHost, notTopmost, badAddress, none]) expect(r.client).toBeNull();
  expect(oddHelo.client).toEqual({ NAME: "mx.outside.example", ADDR: "198.51.100.20", HELO: "[UNAVAILABLE]" });
});

test("XCLIENT's values are xtext: +, = and anything outside printable ASCII encoded", () => {
  const program = `
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("importer", sys.argv[1])
importer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(importer)
print(json.dumps([importer.xtext(v) for v in json.load(sys.stdin)]))
`;
  const out = JSON.parse(runOk("/usr/bin/python3", ["-B", "-c", program, SCRIPT], { input: JSON.stringify(["mx.outside.example", "a+b=c d", "[UNAVAILABLE]", "x\r\ny", "\u00e9"]) }).stdout);
  expect(out).toEqual(["mx.outside.example", "a+2Bb+3Dc+20d", "[UNAVAILABLE]", "x+0D+0Ay", "+C3+A9"]);
});
