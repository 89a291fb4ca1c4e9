// rspamd's ratelimit as the core renders it from sendingLimits and the mailboxes' own: which
// rate holds each login, at what limit, under which name. test/e2e/hardening.test.ts sends
// past these limits through the real daemons.
import { type MailConfigInput, type MailboxInput, parseConfig, RATE_LIMITS, rspamdLocalFiles } from "@mailstack/core";

const PASSWORD = "correct horse battery staple";
const box = (address: string, sendingLimits?: MailboxInput["sendingLimits"]): MailboxInput => ({ address, password: PASSWORD, ...(sendingLimits && { sendingLimits }) });
const ratelimit = (mailboxes: MailboxInput[], sendingLimits: MailConfigInput["sendingLimits"] = { messagesPerHour: 20, recipientsPerHour: 60 }) =>
  rspamdLocalFiles(parseConfig({ domain: "example.com", sendingLimits, mailboxes }))["ratelimit.conf"];

interface Rate {
  name: string;
  selector: string;
  burst: number;
  rate: string;
  message: string;
}
/** The rates of a rendered ratelimit.conf, in file order. */
function rates(conf: string): Rate[] {
  const found = [...conf.matchAll(/^ {2}(\w+) \{\n {4}selector = "([^"]*)";\n {4}bucket \{\n {6}burst = (\d+);\n {6}rate = "([^"]*)";\n {6}skip_recipients = \w+;\n {6}message = "([^"]*)";\n {4}\}\n {2}\}$/gm)];
  // Every rate in the file is one of these: none is skipped by the pattern.
  expect(found).toHaveLength(conf.match(/selector =/g)?.length ?? 0);
  return found.map(([, name, selector, burst, rate, message]) => ({ name, selector, burst: Number(burst), rate, message }));
}
/** The limit each login is held to for `what`, by evaluating in()/not_in() as rspamd does. */
function limitOf(conf: string, what: keyof typeof RATE_LIMITS, login: string): number[] {
  return rates(conf)
    .filter((r) => r.selector.startsWith(`id('${what}');user.lower`))
    .filter((r) => {
      const filter = /^id\('\w+'\);user\.lower(?:\.(in|not_in)\(((?:'[^']*',?)+)\))?$/.exec(r.selector);
      expect([r.selector, filter !== null]).toEqual([r.selector, true]);
      if (!filter?.[1]) return true;
      const listed = [...filter[2].matchAll(/'([^']*)'/g)].map((m) => m[1]).includes(login);
      return filter[1] === "in" ? listed : !listed;
    })
    .map((r) => r.burst);
}

test("without limits of their own, every login is held by one rate per count, at the stack's limits", () => {
  const conf = ratelimit([box("alice@example.com"), box("bob@example.com")]);
  expect(rates(conf)).toEqual([
    {
      name: "mailstack_messages_per_hour",
      selector: "id('messages');user.lower",
      burst: 20,
      rate: "20 / 1h",
      message: "This mailbox has reached its limit of 20 messages an hour; try again later",
    },
    {
      name: "mailstack_recipients_per_hour",
      selector: "id('recipients');user.lower",
      burst: 60,
      rate: "60 / 1h",
      message: "This mailbox has reached its limit of 60 recipients an hour; try again later",
    },
  ]);
  expect(conf).toContain("skip_recipients = true;");
});

test("a mailbox's own limit takes it out of the stack's rate into a rate of that limit, named after the stack's", () => {
  const conf = ratelimit([
    box("alice@example.com"),
    box("news@example.com", { messagesPerHour: 500 }),
    box("kiosk@example.com", { messagesPerHour: 2, recipientsPerHour: 4 }),
    box("bulk@example.com", { messagesPerHour: 500, recipientsPerHour: 5000 }),
    // Its own limit is the stack's: it stays in the stack's rate.
    box("same@example.com", { messagesPerHour: 20 }),
  ]);
  expect(rates(conf).map((r) => [r.name, r.selector, r.burst])).toEqual([
    ["mailstack_messages_per_hour", "id('messages');user.lower.not_in('news@example.com','kiosk@example.com','bulk@example.com')", 20],
    ["mailstack_messages_per_hour_2", "id('messages');user.lower.in('kiosk@example.com')", 2],
    ["mailstack_messages_per_hour_500", "id('messages');user.lower.in('news@example.com','bulk@example.com')", 500],
    ["mailstack_recipients_per_hour", "id('recipients');user.lower.not_in('kiosk@example.com','bulk@example.com')", 60],
    ["mailstack_recipients_per_hour_4", "id('recipients');user.lower.in('kiosk@example.com')", 4],
    ["mailstack_recipients_per_hour_5000", "id('recipients');user.lower.in('bulk@example.com')", 5000],
  ]);
  for (const r of rates(conf)) {
    // Monitoring counts the log's rate names by their start; the refusal names the limit that refused.
    expect(r.name.startsWith(RATE_LIMITS.messages) || r.name.startsWith(RATE_LIMITS.recipients)).toBe(true);
    expect(r.rate).toBe(`${r.burst} / 1h`);
    expect(r.message).toMatch(new RegExp(`^This mailbox has reached its limit of ${r.burst} (messages|recipients) an hour; try again later$`));
  }
  // Each login is held by exactly one rate of each count, at its own limit or the stack's.
  const held = (login: string) => [limitOf(conf, "messages", login), limitOf(conf, "recipients", login)];
  expect(held("alice@example.com")).toEqual([[20], [60]]);
  expect(held("news@example.com")).toEqual([[500], [60]]);
  expect(held("kiosk@example.com")).toEqual([[2], [4]]);
  expect(held("bulk@example.com")).toEqual([[500], [5000]]);
  expect(held("same@example.com")).toEqual([[20], [60]]);
  // A login the config does not know (an old one still in Redis) falls under the stack's.
  expect(held("gone@example.com")).toEqual([[20], [60]]);
});

test("a limit of its own equal to the stack's renders the same file as none", () => {
  const plain = ratelimit([box("alice@example.com"), box("bob@example.com")]);
  expect(ratelimit([box("alice@example.com", { messagesPerHour: 20, recipientsPerHour: 60 }), box("bob@example.com", {})])).toBe(plain);
});

test("logins are written lower-case and quoted, an IDN domain in its xn-- form", () => {
  const config = parseConfig({
    domain: "example.com",
    extraDomains: ["bücher.example"],
    mailboxes: [box("alice@example.com"), box("First.Last_1@Example.com", { messagesPerHour: 7 }), box("x-y@Bücher.example", { messagesPerHour: 7 })],
  });
  expect(rspamdLocalFiles(config)["ratelimit.conf"]).toContain(`selector = "id('messages');user.lower.in('first.last_1@example.com','x-y@xn--bcher-kva.example')";`);
});

test("a login that cannot be quoted in a selector is never written, even when validation is bypassed", () => {
  const config = parseConfig({ domain: "example.com", mailboxes: [box("alice@example.com"), box("bob@example.com", { messagesPerHour: 7 })] });
  for (const evil of ["bob'@example.com", 'bob"@example.com', "bob\\@example.com", "$LOCAL_CONFDIR@example.com", "bob@example.com')", "bob@example.com\nx"]) {
    const hostile = { ...config, mailboxes: config.mailboxes.map((m, i) => (i === 1 ? { ...m, address: evil } : m)) };
    expect(() => rspamdLocalFiles(hostile)).toThrow(`cannot write the login ${JSON.stringify(evil)} in rspamd's ratelimit selector`);
  }
});
