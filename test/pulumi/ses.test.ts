// Amazon SES (MailSes): the relay's identities, MAIL FROM, configuration set, events, IAM user and
// SMTP credentials (sesOutbound); the inbound bucket, receipt rules and the host's access to them
// (sesInbound); SES in another region than the stack; none of it without the options.
import { createPrivateKey, createPublicKey } from "node:crypto";
import {
  dkimPublicKeyFromPem,
  type MailConfigInput,
  parseConfig,
  SES_MAIL_FROM_SPF,
  SES_REJECTED_DAYS,
  sesDkimPrivateKey,
  sesReceivingRules,
  sesSmtpPassword,
} from "@mailstack/core";
import { MailHost, MailParameters, MailSes, MailStack, receiptRuleName, SES_ALERT_EVENTS } from "@mailstack/pulumi";
import * as pulumi from "@pulumi/pulumi";
import { bundleOf } from "../../packages/cli/src/plan";
import { formatTable } from "../../packages/cli/src/report";
import { fullConfig, minimalConfig } from "../support/fixtures";
import { type Run, runFailing, runProgram } from "../support/harness";
import { mockRoute53ZoneId, stackArgs } from "./args";
import { allows, one, plainInputStrings, type Statement, statements, T } from "./helpers";

const ACCOUNT = "123456789012";
const PATH = "/mailstack/mailstack/test/mail";
const DOMAINS = ["example.com", "example.org"];
const S = {
  ses: "mailstack:aws:MailSes",
  identity: "aws:sesv2/emailIdentity:EmailIdentity",
  mailFrom: "aws:sesv2/emailIdentityMailFromAttributes:EmailIdentityMailFromAttributes",
  configurationSet: "aws:sesv2/configurationSet:ConfigurationSet",
  eventDestination: "aws:sesv2/configurationSetEventDestination:ConfigurationSetEventDestination",
  topic: "aws:sns/topic:Topic",
  topicPolicy: "aws:sns/topicPolicy:TopicPolicy",
  subscription: "aws:sns/topicSubscription:TopicSubscription",
  user: "aws:iam/user:User",
  userPolicy: "aws:iam/userPolicy:UserPolicy",
  accessKey: "aws:iam/accessKey:AccessKey",
  ownership: "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
  publicAccess: "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
  encryption: "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
  bucketPolicy: "aws:s3/bucketPolicy:BucketPolicy",
  lifecycle: "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
  ruleSet: "aws:ses/receiptRuleSet:ReceiptRuleSet",
  rule: "aws:ses/receiptRule:ReceiptRule",
  activeRuleSet: "aws:ses/activeReceiptRuleSet:ActiveReceiptRuleSet",
  egress: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
  r53: "aws:route53/record:Record",
};
/** Every resource type MailSes may create. */
const SES_TYPES = Object.entries(S)
  .filter(([key]) => !["ses", "egress", "r53"].includes(key))
  .map(([, type]) => type)
  .concat([T.bucket]);
const STACK_REGION = { "aws:region": "us-east-1" };

/** fullConfig (two domains, aliases, alertEmail) with both options. */
const both = (extra: Partial<MailConfigInput> = {}): MailConfigInput => ({ ...fullConfig(), sesOutbound: true, sesInbound: true, ...extra });

interface Outputs {
  sesIdentities?: string[];
  sesMailFromDomains?: Record<string, string>;
  sesSmtpUsername?: string;
  sesInboundBucketName?: string;
  sesReceiptRuleSetName?: string;
  nextSteps: string;
}
/** The stack's SES outputs that exist (an undefined one would draw a warning), and the next steps. */
const outputsOf = (m: MailStack) =>
  Object.fromEntries(
    Object.entries({
      sesIdentities: m.sesIdentities,
      sesMailFromDomains: m.sesMailFromDomains,
      sesSmtpUsername: m.sesSmtpUsername,
      sesInboundBucketName: m.sesInboundBucketName,
      sesReceiptRuleSetName: m.sesReceiptRuleSetName,
      nextSteps: m.nextSteps,
    }).filter(([, value]) => value !== undefined),
  );

let full: Run; // both options, SES in the stack's region, alertEmail: events to the alert topic
let fullStack: MailStack;
let elsewhere: Run; // both options, SES in eu-west-1, the stack in us-east-1: a topic of its own there
let r53: Run; // both options on Route 53
let outboundOnly: Run; // minimalConfig with sesOutbound: no alertEmail, so no events
let inboundOnly: Run; // minimalConfig with sesInbound, inbound TLS required
let none: Run; // fullConfig: no SES at all

beforeAll(async () => {
  full = await runProgram(() => {
    fullStack = new MailStack("mail", stackArgs(both()));
    return outputsOf(fullStack);
  }, { config: STACK_REGION });
  elsewhere = await runProgram(() => outputsOf(new MailStack("mail", stackArgs(both({ sesRegion: "eu-west-1" })))), { config: STACK_REGION });
  r53 = await runProgram(() => outputsOf(new MailStack("mail", stackArgs(both({ dnsProvider: "route53" })))), { config: STACK_REGION });
  outboundOnly = await runProgram(() => outputsOf(new MailStack("mail", stackArgs({ ...minimalConfig(), sesOutbound: true }))), { config: STACK_REGION });
  inboundOnly = await runProgram(() => outputsOf(new MailStack("mail", stackArgs({ ...minimalConfig(), sesInbound: true, inboundTls: "required" }))), { config: STACK_REGION });
  none = await runProgram(() => outputsOf(new MailStack("mail", stackArgs(fullConfig()))), { config: STACK_REGION });
});

const outputs = (run: Run) => run.outputs as Outputs;
const dkimKey = (run: Run) => run.named("mail-dkim-mail-key");
const accessKey = (run: Run) => one(run, S.accessKey);
const inboundBucket = (run: Run) => run.named("mail-ses-inbound-bucket");
const alertTopic = (run: Run) => run.named("mail-alerts-topic");
const sesArn = (region: string, resource: string) => `arn:aws:ses:${region}:${ACCOUNT}:${resource}`;
const configurationSetArn = (region: string) => sesArn(region, "configuration-set/mailstack-mail-example-com");

/** The relay user's policy must be exactly this: one action, on the identities and the configuration set. */
function expectSmtpPolicy(policy: string, region: string) {
  expect(statements(policy)).toEqual([
    {
      Sid: "SendAsTheStacksDomains",
      Effect: "Allow",
      Action: "ses:SendRawEmail",
      Resource: [...DOMAINS.map((d) => sesArn(region, `identity/${d}`)), configurationSetArn(region)],
    },
  ]);
}

/** The host role's inbound statements must be exactly these. */
function expectHostInboundPolicy(policy: string, bucketArn: string) {
  expect(statements(policy)).toEqual([
    { Sid: "ListSesInbound", Effect: "Allow", Action: "s3:ListBucket", Resource: bucketArn, Condition: { StringLike: { "s3:prefix": ["inbound/", "inbound/*"] } } },
    { Sid: "ImportSesInbound", Effect: "Allow", Action: ["s3:GetObject", "s3:DeleteObject"], Resource: `${bucketArn}/inbound/*` },
    { Sid: "KeepRefusedSesInbound", Effect: "Allow", Action: "s3:PutObject", Resource: `${bucketArn}/rejected/*` },
  ]);
}

describe("sesOutbound: identities and MAIL FROM", () => {
  test("a domain identity per mail domain signs with the stack's DKIM key and selector (BYODKIM), the key as SES takes it and a secret", () => {
    const pem: string = dkimKey(full).state.privateKeyPem;
    const identities = full.ofType(S.identity);
    expect(identities.map((i) => i.name).sort()).toEqual(DOMAINS.map((d) => `mail-ses-identity-${d}`));
    for (const domain of DOMAINS) {
      const identity = full.named(`mail-ses-identity-${domain}`);
      expect(identity.inputs).toEqual({
        emailIdentity: domain,
        region: "us-east-1",
        configurationSetName: "mailstack-mail-example-com",
        dkimSigningAttributes: { domainSigningSelector: "mail", domainSigningPrivateKey: sesDkimPrivateKey(pem) },
        tags: { "mailstack:role": "ses", "mailstack:stack": "mailstack/test" },
      });
      expect(identity.secretPaths).toEqual(["dkimSigningAttributes"]);
      expect(identity.additionalSecretOutputs).toEqual(["dkimSigningAttributes"]);
    }
    // Base64 PKCS#1 DER, no armour or line breaks: the same key as the record the stack publishes.
    const given: string = full.named("mail-ses-identity-example.com").inputs.dkimSigningAttributes.domainSigningPrivateKey;
    expect(given).toMatch(/^[A-Za-z0-9+/]+=*$/);
    const key = createPrivateKey({ key: Buffer.from(given, "base64"), format: "der", type: "pkcs1" });
    const published = createPublicKey(key).export({ type: "spki", format: "pem" }).toString();
    expect(dkimPublicKeyFromPem(published)).toBe(dkimPublicKeyFromPem(dkimKey(full).state.publicKeyPem));
    const record = full.ofType(T.dnsRecord).find((r) => r.inputs.name === "mail._domainkey.example.com")!;
    expect(record.inputs.content.replace(/"\s*"/g, "")).toContain(dkimPublicKeyFromPem(published));
  });

  test("each identity has its MAIL FROM domain, falling back to SES's own when its MX is missing", () => {
    const attributes = full.ofType(S.mailFrom);
    expect(attributes.map((a) => a.inputs).sort((a, b) => a.emailIdentity.localeCompare(b.emailIdentity))).toEqual(
      DOMAINS.map((domain) => ({ emailIdentity: domain, region: "us-east-1", mailFromDomain: `bounce.${domain}`, behaviorOnMxFailure: "USE_DEFAULT_VALUE" })),
    );
    expect(attributes.map((a) => a.name).sort()).toEqual(DOMAINS.map((d) => `mail-ses-mail-from-${d}`));
  });

  test("the MAIL FROM domains' MX and SPF records are published in Cloudflare, and in Route 53", () => {
    for (const domain of DOMAINS) {
      const cf = (key: string) => full.named(`mail-dns-${key}-${domain}`).inputs;
      expect(cf("ses-mail-from-mx")).toMatchObject({ name: `bounce.${domain}`, type: "MX", priority: 10, content: "feedback-smtp.us-east-1.amazonses.com", proxied: false });
      expect(cf("ses-mail-from-spf")).toMatchObject({ name: `bounce.${domain}`, type: "TXT", content: `"${SES_MAIL_FROM_SPF}"` });
      // Route 53: one record set per name and type, in the domain's zone.
      expect(r53.named(`mail-dns-mx-bounce.${domain}`).inputs).toMatchObject({ zoneId: mockRoute53ZoneId(domain), type: "MX", ttl: 3600, records: ["10 feedback-smtp.us-east-1.amazonses.com"] });
      expect(r53.named(`mail-dns-txt-bounce.${domain}`).inputs).toMatchObject({ zoneId: mockRoute53ZoneId(domain), type: "TXT", records: [SES_MAIL_FROM_SPF] });
      // The inbound MX joins the domain's MX set after the host.
      expect(r53.named(`mail-dns-mx-${domain}`).inputs.records).toEqual(["10 mail.example.com", "20 inbound-smtp.us-east-1.amazonaws.com"]);
    }
  });
});

describe("sesOutbound: configuration set and events", () => {
  test("the configuration set: reputation metrics, sending on, suppression of bounces and complaints", () => {
    expect(one(full, S.configurationSet).inputs).toEqual({
      configurationSetName: "mailstack-mail-example-com",
      region: "us-east-1",
      reputationOptions: { reputationMetricsEnabled: true },
      sendingOptions: { sendingEnabled: true },
      suppressionOptions: { suppressedReasons: ["BOUNCE", "COMPLAINT"] },
      tags: { "mailstack:role": "ses", "mailstack:stack": "mailstack/test" },
    });
  });

  test("bounces, complaints, rejects, delays and rendering failures go to the alert topic, once SES may publish there", () => {
    const destination = one(full, S.eventDestination);
    const topicArn = alertTopic(full).state.arn;
    expect(destination.inputs).toEqual({
      configurationSetName: "mailstack-mail-example-com",
      eventDestinationName: "mailstack-alerts",
      region: "us-east-1",
      eventDestination: { enabled: true, matchingEventTypes: ["BOUNCE", "COMPLAINT", "REJECT", "DELIVERY_DELAY", "RENDERING_FAILURE"], snsDestination: { topicArn } },
    });
    expect([...SES_ALERT_EVENTS]).toEqual(destination.inputs.eventDestination.matchingEventTypes);
    const policy = one(full, S.topicPolicy);
    expect(destination.dependsOn).toContain(policy.urn);
    expect(policy.inputs.arn).toBe(topicArn);
    expect(policy.inputs.region).toBe("us-east-1");
    expect(statements(policy.inputs.policy)).toEqual([
      {
        Sid: "AccountOwner",
        Effect: "Allow",
        Principal: { AWS: "*" },
        Action: [
          "SNS:GetTopicAttributes",
          "SNS:SetTopicAttributes",
          "SNS:AddPermission",
          "SNS:RemovePermission",
          "SNS:DeleteTopic",
          "SNS:Subscribe",
          "SNS:ListSubscriptionsByTopic",
          "SNS:Publish",
        ],
        Resource: topicArn,
        Condition: { StringEquals: { "AWS:SourceOwner": ACCOUNT } },
      },
      {
        Sid: "SesSendingEvents",
        Effect: "Allow",
        Principal: { Service: "ses.amazonaws.com" },
        Action: "SNS:Publish",
        Resource: topicArn,
        Condition: { StringEquals: { "aws:SourceAccount": ACCOUNT, "aws:SourceArn": configurationSetArn("us-east-1") } },
      },
    ]);
    // The alarms still publish to the same topic: no second topic in the stack's region.
    expect(full.ofType(S.topic).map((t) => t.name)).toEqual(["mail-alerts-topic"]);
  });

  test("without alertEmail there is no event destination and no topic policy", () => {
    for (const type of [S.eventDestination, S.topicPolicy, S.topic, S.subscription]) expect({ type, found: outboundOnly.ofType(type).length }).toEqual({ type, found: 0 });
    expect(outboundOnly.ofType(S.configurationSet)).toHaveLength(1);
  });
});

describe("sesOutbound: the relay's IAM user and SMTP credentials", () => {
  test("a user under /mailstack/ that may only send raw mail as the stack's identities through its configuration set", () => {
    const user = one(full, S.user);
    expect(user.inputs).toEqual({ path: "/mailstack/", tags: { "mailstack:role": "ses", "mailstack:stack": "mailstack/test" } });
    const policy = one(full, S.userPolicy);
    expect(policy.inputs.user).toBe(user.state.name);
    expectSmtpPolicy(policy.inputs.policy, "us-east-1");
    const all = statements(policy.inputs.policy);
    const identity = sesArn("us-east-1", "identity/example.com");
    expect(allows(all, "ses:SendRawEmail", identity)).toBe(true);
    expect(allows(all, "ses:SendRawEmail", configurationSetArn("us-east-1"))).toBe(true);
    expect(allows(all, "ses:SendRawEmail", sesArn("us-east-1", "identity/example.net"))).toBe(false);
    expect(allows(all, "ses:SendRawEmail", sesArn("eu-west-1", "identity/example.com"))).toBe(false);
    expect(allows(all, "ses:SendEmail", identity)).toBe(false);
    expect(allows(all, "ses:PutEmailIdentityDkimSigningAttributes", identity)).toBe(false);
    expect(allows(all, "iam:CreateAccessKey", user.state.arn)).toBe(false);
  });

  test("the exact-policy check fails for any other action, resource or extra statement", () => {
    const policy = one(full, S.userPolicy).inputs.policy as string;
    const doc = JSON.parse(policy) as { Statement: Statement[] };
    const variants = [
      { ...doc, Statement: [{ ...doc.Statement[0], Action: "ses:SendEmail" }] },
      { ...doc, Statement: [{ ...doc.Statement[0], Action: ["ses:SendRawEmail", "ses:SendEmail"] }] },
      { ...doc, Statement: [{ ...doc.Statement[0], Action: "ses:*" }] },
      { ...doc, Statement: [{ ...doc.Statement[0], Resource: "*" }] },
      { ...doc, Statement: [...doc.Statement, { Effect: "Allow", Action: "s3:GetObject", Resource: "*" }] },
    ];
    for (const variant of variants) expect(() => expectSmtpPolicy(JSON.stringify(variant), "us-east-1")).toThrow();
    expect(() => expectSmtpPolicy(policy, "us-east-1")).not.toThrow();
  });

  test("its access key's password, derived for SES's region, reaches the host only in the SecureString parameter ses/smtp-credentials", () => {
    const key = accessKey(full);
    expect(key.inputs).toEqual({ user: one(full, S.user).state.name });
    expect(key.additionalSecretOutputs).toEqual(expect.arrayContaining(["secret", "sesSmtpPasswordV4"]));
    const password = sesSmtpPassword(key.state.secret, "us-east-1");
    const parameter = full.named("mail-parameters-ses-smtp-credentials");
    expect(parameter.inputs).toMatchObject({ name: `${PATH}/files/ses/smtp-credentials`, type: "SecureString" });
    expect(parameter.inputs.value).toBe(`[email-smtp.us-east-1.amazonaws.com]:587 ${key.id}:${password}\n`);
    expect(parameter.secretPaths).toContain("value");
    // The manifest names it, as a parameter; the runtime object does not hold it.
    const manifest = JSON.parse(full.named("mail-parameters-manifest").inputs.value) as { files: { name: string; source: string }[] };
    expect(manifest.files.find((f) => f.name === "ses/smtp-credentials")).toMatchObject({ source: "parameter" });
    const holders = full.record.resources.filter((r) => JSON.stringify(r.inputs).includes(password));
    expect(holders.map((r) => r.name)).toEqual(["mail-parameters-ses-smtp-credentials"]);
    for (const resource of full.record.resources) {
      for (const leaf of plainInputStrings(resource)) {
        for (const needle of [password, key.state.secret as string]) {
          if (leaf.value.includes(needle)) throw new Error(`${resource.name} input ${leaf.path} holds the SES secret`);
        }
      }
    }
  });

  test("the stack's SMTP credentials are a secret; its outputs give the user name only", async () => {
    const ses = fullStack.ses!;
    expect(await pulumi.isSecret(ses.smtpCredentials!)).toBe(true);
    expect(await pulumi.isSecret(ses.smtpUsername!)).toBe(false);
    const key = accessKey(full);
    expect(outputs(full).sesSmtpUsername).toBe(key.id);
    const text = JSON.stringify(full.outputs);
    expect(text).not.toContain(sesSmtpPassword(key.state.secret, "us-east-1"));
    expect(text).not.toContain(key.state.secret);
  });

  test("the host may connect out to port 587, only with sesOutbound", () => {
    const rule = full.named("mail-firewall-out-ses-relay");
    expect(rule.inputs).toMatchObject({ ipProtocol: "tcp", fromPort: 587, toPort: 587, cidrIpv4: "0.0.0.0/0" });
    expect(outboundOnly.named("mail-firewall-out-ses-relay").inputs.fromPort).toBe(587);
    for (const run of [inboundOnly, none]) expect(run.ofType(S.egress).filter((r) => r.inputs.fromPort === 587)).toEqual([]);
  });
});

describe("sesInbound: the bucket", () => {
  test("encrypted (SSE-S3), closed to the public, owner-enforced, never force-destroyed", () => {
    const bucket = inboundBucket(full);
    expect(bucket.inputs).toEqual({ forceDestroy: false, region: "us-east-1", tags: { "mailstack:role": "ses", "mailstack:stack": "mailstack/test" } });
    const id = bucket.id;
    expect(full.named("mail-ses-inbound-ownership").inputs).toEqual({ bucket: id, region: "us-east-1", rule: { objectOwnership: "BucketOwnerEnforced" } });
    expect(full.named("mail-ses-inbound-public-access").inputs).toEqual({
      bucket: id,
      region: "us-east-1",
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    });
    expect(full.named("mail-ses-inbound-encryption").inputs).toEqual({ bucket: id, region: "us-east-1", rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } }] });
  });

  test("its policy: TLS only, and SES may put objects below inbound/ for this account's rules of this rule set only", () => {
    const bucket = inboundBucket(full);
    const arn = bucket.state.arn as string;
    const policy = full.named("mail-ses-inbound-policy");
    expect(policy.dependsOn).toContain(full.named("mail-ses-inbound-public-access").urn);
    const rules = sesArn("us-east-1", "receipt-rule-set/mailstack-mail.example.com:receipt-rule/*");
    expect(statements(policy.inputs.policy)).toEqual([
      { Sid: "DenyInsecureTransport", Effect: "Deny", Principal: "*", Action: "s3:*", Resource: [arn, `${arn}/*`], Condition: { Bool: { "aws:SecureTransport": "false" } } },
      {
        Sid: "SesStoresInbound",
        Effect: "Allow",
        Principal: { Service: "ses.amazonaws.com" },
        Action: "s3:PutObject",
        Resource: `${arn}/inbound/*`,
        Condition: { StringEquals: { "aws:SourceAccount": ACCOUNT }, StringLike: { "aws:SourceArn": rules } },
      },
    ]);
    const sesStatement = statements(policy.inputs.policy).filter((s) => s.Effect === "Allow");
    const context = { "aws:SourceAccount": ACCOUNT, "aws:SourceArn": sesArn("us-east-1", "receipt-rule-set/mailstack-mail.example.com:receipt-rule/alice_at_example.com") };
    expect(allows(sesStatement, "s3:PutObject", `${arn}/inbound/alice@example.com/0123abcd`, context)).toBe(true);
    expect(allows(sesStatement, "s3:PutObject", `${arn}/rejected/x`, context)).toBe(false);
    expect(allows(sesStatement, "s3:PutObject", `${arn}/inbound/x`, { ...context, "aws:SourceAccount": "999999999999" })).toBe(false);
    expect(allows(sesStatement, "s3:PutObject", `${arn}/inbound/x`, { ...context, "aws:SourceArn": sesArn("us-east-1", "receipt-rule-set/other:receipt-rule/r") })).toBe(false);
    expect(allows(sesStatement, "s3:GetObject", `${arn}/inbound/x`, context)).toBe(false);
  });

  test("its lifecycle expires rejected/ after the core's days and nothing below inbound/, and aborts incomplete uploads", () => {
    expect(full.named("mail-ses-inbound-lifecycle").inputs).toEqual({
      bucket: inboundBucket(full).id,
      region: "us-east-1",
      rules: [
        { id: "rejected", status: "Enabled", filter: { prefix: "rejected/" }, expiration: { days: SES_REJECTED_DAYS } },
        { id: "incomplete-uploads", status: "Enabled", filter: {}, abortIncompleteMultipartUpload: { daysAfterInitiation: 7 } },
      ],
    });
    expect(SES_REJECTED_DAYS).toBe(30);
  });
});

describe("sesInbound: receipt rules", () => {
  const expectedRules = (input: MailConfigInput) => sesReceivingRules(parseConfig(input, { region: "us-east-1" }));

  test("one rule per receiving address, in address order, each chained after the one before, storing below its address's prefix", () => {
    const expected = expectedRules(both());
    // Mailboxes, their aliases, aliases, postmaster and abuse of each domain.
    expect(expected.map((r) => r.address)).toEqual([
      "abuse@example.com",
      "abuse@example.org",
      "alice@example.com",
      "alice@example.org",
      "bob@example.com",
      "dmarc@example.com",
      "info@example.com",
      "postmaster@example.com",
      "postmaster@example.org",
    ]);
    const bucket = inboundBucket(full).state.bucket as string;
    const ruleSet = one(full, S.ruleSet);
    expect(ruleSet.inputs).toEqual({ ruleSetName: "mailstack-mail.example.com", region: "us-east-1" });
    const policy = full.named("mail-ses-inbound-policy");
    const rules = full.ofType(S.rule);
    expect(rules).toHaveLength(expected.length);
    expected.forEach((rule, i) => {
      const resource = full.named(`mail-ses-rule-${rule.address}`);
      expect(resource.inputs).toEqual({
        name: receiptRuleName(rule.address),
        ruleSetName: "mailstack-mail.example.com",
        region: "us-east-1",
        recipients: [rule.address],
        enabled: true,
        scanEnabled: true,
        tlsPolicy: "Optional",
        s3Actions: [{ bucketName: bucket, objectKeyPrefix: `inbound/${rule.address}/`, position: 1 }],
        ...(i === 0 ? {} : { after: receiptRuleName(expected[i - 1].address) }),
      });
      expect(resource.dependsOn).toContain(policy.urn);
    });
    expect(receiptRuleName("alice@example.com")).toBe("alice_at_example.com");
  });

  test("SES requires TLS of senders exactly when the host does on port 25", () => {
    const rules = inboundOnly.ofType(S.rule);
    expect(rules.map((r) => r.inputs.recipients[0]).sort()).toEqual(["abuse@example.com", "alice@example.com", "postmaster@example.com"]);
    for (const rule of rules) expect(rule.inputs.tlsPolicy).toBe("Require");
  });

  test("the rule set is made active once every rule exists", () => {
    const active = one(full, S.activeRuleSet);
    expect(active.inputs).toEqual({ ruleSetName: "mailstack-mail.example.com", region: "us-east-1" });
    for (const rule of full.ofType(S.rule)) expect(active.dependsOn).toContain(rule.urn);
  });

  test("rule names are names SES takes, unique even where addresses differ only in characters SES refuses", () => {
    const names = ["a-b@x.example", "a+b@x.example", "a.b@x.example", `${"l".repeat(60)}@example.com`, "über@example.com"].map(receiptRuleName);
    for (const name of names) {
      expect(name).toMatch(/^[A-Za-z0-9][A-Za-z0-9_.-]*[A-Za-z0-9]$/);
      expect(name.length).toBeLessThanOrEqual(64);
    }
    expect(new Set(names).size).toBe(names.length);
  });
});

describe("sesInbound: the host", () => {
  test("the role may list inbound/, read and delete below it and put below rejected/, exactly", () => {
    const arn = inboundBucket(full).state.arn as string;
    const policy = full.named("mail-host-ses-inbound");
    expect(policy.inputs.role).toBe(full.named("mail-host-role").state.name);
    expectHostInboundPolicy(policy.inputs.policy, arn);
    const all = statements(policy.inputs.policy);
    expect(allows(all, "s3:ListBucket", arn, { "s3:prefix": "inbound/" })).toBe(true);
    expect(allows(all, "s3:ListBucket", arn, { "s3:prefix": "rejected/" })).toBe(false);
    expect(allows(all, "s3:ListBucket", arn)).toBe(false);
    expect(allows(all, "s3:GetObject", `${arn}/inbound/alice@example.com/m1`)).toBe(true);
    expect(allows(all, "s3:DeleteObject", `${arn}/inbound/alice@example.com/m1`)).toBe(true);
    expect(allows(all, "s3:PutObject", `${arn}/rejected/alice@example.com/m1`)).toBe(true);
    expect(allows(all, "s3:PutObject", `${arn}/inbound/alice@example.com/m1`)).toBe(false);
    expect(allows(all, "s3:GetObject", `${arn}/rejected/alice@example.com/m1`)).toBe(false);
    expect(allows(all, "s3:DeleteObject", `${arn}/rejected/alice@example.com/m1`)).toBe(false);
    expect(allows(all, "s3:PutBucketPolicy", arn)).toBe(false);
    // A change of action fails the exact check.
    const changed = JSON.stringify({ Version: "2012-10-17", Statement: all.map((s) => (s.Sid === "KeepRefusedSesInbound" ? { ...s, Action: "s3:*" } : s)) });
    expect(() => expectHostInboundPolicy(changed, arn)).toThrow();
  });

  test("the host bundle names the bucket, for the importer", () => {
    const bundle = bundleOf(full.record)!;
    const bucket = inboundBucket(full).state.bucket as string;
    const holders = bundle.files.filter((f) => f.content.includes(`MAILSTACK_SES_BUCKET=${bucket}`) || f.content.includes(`MAILSTACK_SES_BUCKET="${bucket}"`));
    expect(holders.length).toBeGreaterThan(0);
    expect(bundleOf(none.record)!.document).not.toContain("MAILSTACK_SES_BUCKET");
  });

  test("the domains' MX lists SES last", () => {
    for (const domain of DOMAINS) {
      expect(full.named(`mail-dns-mx-inbound-smtp.us-east-1.amazonaws.com-${domain}`).inputs).toMatchObject({ name: domain, type: "MX", priority: 20, content: "inbound-smtp.us-east-1.amazonaws.com" });
    }
  });
});

describe("SES in another region than the stack", () => {
  const ses = (run: Run) => run.record.resources.filter((r) => SES_TYPES.includes(r.type) && r.name.startsWith("mail-ses-"));

  test("every SES, S3 and SNS resource of MailSes names SES's region; IAM is global", () => {
    const resources = ses(elsewhere);
    expect(resources.length).toBeGreaterThan(20);
    for (const r of resources) {
      const global = [S.user, S.userPolicy, S.accessKey].includes(r.type);
      expect({ name: r.name, region: r.inputs.region }).toEqual({ name: r.name, region: global ? undefined : "eu-west-1" });
    }
    // The stack's own resources stay where they are.
    expect(elsewhere.named("mail-backup-bucket").inputs.region).toBeUndefined();
    expect(alertTopic(elsewhere).inputs.region).toBeUndefined();
  });

  test("ARNs, the endpoint, the MX records and the SMTP password follow SES's region", () => {
    expectSmtpPolicy(one(elsewhere, S.userPolicy).inputs.policy, "eu-west-1");
    const key = accessKey(elsewhere);
    expect(elsewhere.named("mail-parameters-ses-smtp-credentials").inputs.value).toBe(`[email-smtp.eu-west-1.amazonaws.com]:587 ${key.id}:${sesSmtpPassword(key.state.secret, "eu-west-1")}\n`);
    expect(sesSmtpPassword(key.state.secret, "eu-west-1")).not.toBe(sesSmtpPassword(key.state.secret, "us-east-1"));
    const arn = inboundBucket(elsewhere).state.arn as string;
    const bucketPolicy = statements(elsewhere.named("mail-ses-inbound-policy").inputs.policy);
    expect(bucketPolicy[1].Condition!.StringLike["aws:SourceArn"]).toBe(sesArn("eu-west-1", "receipt-rule-set/mailstack-mail.example.com:receipt-rule/*"));
    expectHostInboundPolicy(elsewhere.named("mail-host-ses-inbound").inputs.policy, arn);
    expect(elsewhere.named("mail-dns-ses-mail-from-mx-example.com").inputs.content).toBe("feedback-smtp.eu-west-1.amazonses.com");
    expect(elsewhere.named("mail-dns-mx-inbound-smtp.eu-west-1.amazonaws.com-example.com").inputs.content).toBe("inbound-smtp.eu-west-1.amazonaws.com");
  });

  test("events go to a topic of MailSes's own in SES's region, mailed to alertEmail; the alert topic keeps its default policy", () => {
    const topic = elsewhere.named("mail-ses-events-topic");
    expect(topic.inputs).toMatchObject({ region: "eu-west-1", displayName: "mailstack mail.example.com SES" });
    expect(topic.state.arn).toMatch(/^arn:aws:sns:eu-west-1:123456789012:/);
    expect(elsewhere.named("mail-ses-events-email").inputs).toEqual({ topic: topic.state.arn, region: "eu-west-1", protocol: "email", endpoint: "ops@example.net" });
    expect(one(elsewhere, S.eventDestination).inputs.eventDestination.snsDestination).toEqual({ topicArn: topic.state.arn });
    const policy = one(elsewhere, S.topicPolicy);
    expect(policy.inputs.arn).toBe(topic.state.arn);
    expect(statements(policy.inputs.policy)[1].Condition).toEqual({ StringEquals: { "aws:SourceAccount": ACCOUNT, "aws:SourceArn": configurationSetArn("eu-west-1") } });
    expect(outputs(elsewhere).nextSteps).toContain("Confirm both subscriptions AWS mailed to ops@example.net (SES's events come from a topic of their own in eu-west-1)");
  });
});

describe("without the options", () => {
  test("no SES, S3 inbound, IAM user, topic policy, host grant, parameter or output", () => {
    // The backup bucket's settings and the alert topic are there, as always; nothing else of these types.
    const shared = [T.bucket, S.topic, S.subscription, S.ownership, S.publicAccess, S.encryption, S.bucketPolicy, S.lifecycle];
    for (const type of SES_TYPES.filter((t) => !shared.includes(t))) expect({ type, found: none.ofType(type).length }).toEqual({ type, found: 0 });
    for (const type of shared) expect({ type, names: none.ofType(type).map((r) => r.name).filter((n) => !n.startsWith("mail-backup-") && !n.startsWith("mail-alerts-")) }).toEqual({ type, names: [] });
    expect(none.record.resources.filter((r) => r.name.startsWith("mail-ses"))).toEqual([]);
    expect(none.record.resources.filter((r) => r.name === "mail-host-ses-inbound" || r.name === "mail-parameters-ses-smtp-credentials")).toEqual([]);
    expect(none.ofType(T.dnsRecord).filter((r) => /amazonses|amazonaws/.test(String(r.inputs.content)))).toEqual([]);
    expect(Object.keys(outputs(none))).toEqual(["nextSteps"]);
  });

  test("only the half asked for", () => {
    expect(outboundOnly.ofType(T.bucket).map((b) => b.name)).toEqual(["mail-backup-bucket"]);
    expect(outboundOnly.ofType(S.rule)).toEqual([]);
    expect(outboundOnly.record.resources.filter((r) => r.name === "mail-host-ses-inbound")).toEqual([]);
    // SES receives only for verified domains: the identities are there, verified by the same
    // DKIM key, with no configuration set and no MAIL FROM domain.
    expect(inboundOnly.ofType(S.identity).map((i) => [i.inputs.emailIdentity, i.inputs.configurationSetName, i.inputs.dkimSigningAttributes.domainSigningSelector])).toEqual([["example.com", undefined, "mail"]]);
    expect(inboundOnly.ofType(S.mailFrom)).toEqual([]);
    expect(inboundOnly.ofType(S.configurationSet)).toEqual([]);
    expect(inboundOnly.ofType(S.user)).toEqual([]);
    expect(inboundOnly.record.resources.filter((r) => r.name === "mail-parameters-ses-smtp-credentials")).toEqual([]);
    expect(inboundOnly.ofType(T.dnsRecord).filter((r) => r.inputs.name.startsWith("bounce."))).toEqual([]);
  });
});

describe("outputs and next steps", () => {
  test("the identities, MAIL FROM domains, SMTP user name, inbound bucket and rule set", () => {
    expect(outputs(full)).toMatchObject({
      sesIdentities: DOMAINS,
      sesMailFromDomains: { "example.com": "bounce.example.com", "example.org": "bounce.example.org" },
      sesSmtpUsername: accessKey(full).id,
      sesInboundBucketName: inboundBucket(full).state.bucket,
      sesReceiptRuleSetName: "mailstack-mail.example.com",
    });
    expect(outputs(outboundOnly).sesInboundBucketName).toBeUndefined();
    expect(outputs(inboundOnly).sesIdentities).toEqual(["example.com"]);
    expect(outputs(inboundOnly).sesMailFromDomains).toBeUndefined();
    expect(outputs(inboundOnly).sesSmtpUsername).toBeUndefined();
  });

  test("with sesOutbound the first step is the sandbox and how to leave it, not the port-25 request", () => {
    const steps = outputs(full).nextSteps;
    expect(steps).toMatch(/^1\. Outgoing mail leaves through Amazon SES in us-east-1\./m);
    expect(steps).toContain("only for verified recipients and at most 200 messages a day");
    expect(steps).toContain("Request production access");
    expect(steps).toContain("aws sesv2 put-account-details --region us-east-1 --production-access-enabled");
    expect(steps).not.toContain("ec2-email-limit-rdns-request");
    expect(steps).toContain("alarms about the host and SES's bounce and complaint events");
  });

  test("with sesInbound a step says the rule set is now the active one in the region, replacing any other", () => {
    expect(outputs(full).nextSteps).toMatch(/^7\. Amazon SES \(inbound-smtp\.us-east-1\.amazonaws\.com\) is the domains' last MX.*mailstack-mail\.example\.com is now the active one in us-east-1: an account has one active rule set per region/m);
    expect(outputs(inboundOnly).nextSteps).toMatch(/^6\. Amazon SES/m);
    expect(outputs(inboundOnly).nextSteps).toContain("ec2-email-limit-rdns-request");
  });

  test("without sesOutbound the port-25 step recommends it", () => {
    const steps = outputs(none).nextSteps;
    expect(steps).toContain("ec2-email-limit-rdns-request");
    expect(steps).toContain("to send from day one, set sesOutbound");
  });

  test("mailstack plan's table describes each SES resource", () => {
    const table = formatTable(full.record);
    const row = (name: string) => table.split("\n").find((l) => l.includes(` ${name} `) || l.endsWith(` ${name}`)) ?? "";
    expect(row("mail-ses-identity-example.com")).toMatch(/example\.com, BYODKIM \(key secret\), configuration set mailstack-mail-example-com in us-east-1/);
    expect(row("mail-ses-identity-example.com")).not.toMatch(/MII/);
    expect(row("mail-ses-mail-from-example.org")).toMatch(/MAIL FROM bounce\.example\.org for example\.org, on MX failure USE_DEFAULT_VALUE/);
    expect(row("mail-ses-configuration-set")).toMatch(/suppresses BOUNCE, COMPLAINT, reputation metrics on/);
    expect(row("mail-ses-events")).toMatch(/BOUNCE, COMPLAINT, REJECT, DELIVERY_DELAY, RENDERING_FAILURE -> sns:mail-alerts-topic/);
    expect(row("mail-ses-smtp-send")).toMatch(/1 actions on ses:identity\/example\.com, ses:identity\/example\.org, ses:configuration-set\/mailstack-mail-example-com/);
    expect(row("mail-ses-inbound-lifecycle")).toMatch(/rejected: objects under rejected\/ expire after 30 days; incomplete-uploads: incomplete uploads aborted after 7 days/);
    expect(row("mail-ses-rule-alice@example.com")).toMatch(/alice@example\.com -> s3:mail-ses-inbound-bucket-\w+\/inbound\/alice@example\.com\/, TLS Optional, after abuse_at_example\.org/);
    expect(row("mail-ses-active-rule-set")).toMatch(/mailstack-mail\.example\.com ACTIVE in us-east-1, replacing any other active rule set there/);
    expect(row("mail-backup-lifecycle")).toMatch(/old-versions: old versions move to STANDARD_IA after 30, expire after 90 days/);
  });
});

describe("component tree", () => {
  test("every SES resource is a child of MailSes under the MailStack, typed mailstack:aws:MailSes", () => {
    const component = one(full, S.ses);
    expect(component.name).toBe("mail-ses");
    expect(component.parent).toBe(one(full, T.mailStack).urn);
    const children = full.record.resources.filter((r) => r.name.startsWith("mail-ses-"));
    expect(children.length).toBe(2 * 2 + 1 + 2 + 3 + 6 + 1 + 9 + 1);
    for (const child of children) expect({ name: child.name, parent: child.parent }).toEqual({ name: child.name, parent: component.urn });
  });
});

describe("refused before any resource", () => {
  const config = (input: MailConfigInput) => parseConfig(input, { region: "us-east-1" });

  test("MailSes without SES settings, or without the DKIM key, or both an alert topic and an address", async () => {
    const { errors, run } = await runFailing([
      () => new MailSes("s1", { config: config(fullConfig()) }),
      () => new MailSes("s2", { config: config({ ...minimalConfig(), sesInbound: true }) }),
      () => new MailSes("s3", { config: config({ ...minimalConfig(), sesInbound: true }), dkimPrivateKeyPem: "unused", alertTopicArn: "arn:aws:sns:us-east-1:123456789012:t", alertEmail: "ops@example.net" }),
    ]);
    expect(errors.map((e) => pulumi.ResourceError.isInstance(e))).toEqual([true, true, true]);
    expect((errors[0] as Error).message).toContain("MailSes s1: config: has no ses settings");
    expect((errors[1] as Error).message).toContain("MailSes s2: dkimPrivateKeyPem: is required, as every identity is verified by and signs with the stack's DKIM key");
    expect((errors[2] as Error).message).toContain("MailSes s3: alertEmail: an own topic for it is made only without alertTopicArn");
    expect(run.record.resources.map((r) => r.type)).toEqual([T.stack]);
  });

  test("MailParameters and MailHost refuse a missing or needless SES input", async () => {
    const base = { path: PATH, bucket: "b", credentials: [{ password: "correct horse battery staple" }], dkimPrivateKeyPem: "k", tlsPrivateKeyPem: "k", resticPassword: "r" };
    const host = { subnetId: "subnet-1", availabilityZone: "us-east-1a", securityGroupIds: ["sg-1"], parameterPath: PATH, backupBucketArn: "arn:aws:s3:::b" };
    const { errors, run } = await runFailing([
      () => new MailParameters("p1", { ...base, config: config({ ...minimalConfig(), sesOutbound: true }) }),
      () => new MailParameters("p2", { ...base, config: config(minimalConfig()), sesSmtpCredentials: { username: "u", password: "p" } }),
      () => new MailHost("h1", { ...host, config: config({ ...minimalConfig(), sesInbound: true }) }),
      () => new MailHost("h2", { ...host, config: config(minimalConfig()), sesInboundBucketArn: "arn:aws:s3:::x" }),
    ]);
    expect(errors.map((e) => (e as Error).message)).toEqual([
      expect.stringContaining("MailParameters p1: sesSmtpCredentials: is required with sesOutbound"),
      expect.stringContaining("MailParameters p2: sesSmtpCredentials: is given, but without sesOutbound"),
      expect.stringContaining("MailHost h1: sesInboundBucketArn: is required with sesInbound"),
      expect.stringContaining("MailHost h2: sesInboundBucketArn: is given, but without sesInbound"),
    ]);
    expect(run.record.resources.map((r) => r.type)).toEqual([T.stack]);
  });
});
