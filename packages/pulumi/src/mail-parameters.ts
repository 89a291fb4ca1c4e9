import {
  appPasswordKey,
  bindPasswordProblem,
  checkPassword,
  checkPasswordHash,
  type ConfigIssue,
  HOST_OBJECTS,
  hostObjectsPrefix,
  keyFileNames,
  keyParameterName,
  MAX_RESTIC_PASSWORD_LENGTH,
  MIN_APP_PASSWORD_LENGTH,
  type MailConfig,
  runtimeDelivery,
  runtimeFiles,
  type SesSmtpCredentials,
} from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";
import { getPartitionOutput } from "@pulumi/aws/getPartition";
import { getRegionOutput } from "@pulumi/aws/getRegion";
import * as s3 from "@pulumi/aws/s3";
import * as ssm from "@pulumi/aws/ssm";
import { MailStackConfigError } from "./config-error";
import { PasswordHashes } from "./password-hashes";

/** A password or its hash: exactly one of the two, usually a Pulumi secret. */
export interface Credential {
  /** The password in plain text; hashed with bcrypt before it is stored. */
  readonly password?: pulumi.Input<string>;
  /** A hash made elsewhere (`doveadm pw`): BLF-CRYPT, SHA512-CRYPT, SHA256-CRYPT, ARGON2ID or ARGON2I. */
  readonly passwordHash?: pulumi.Input<string>;
}

/** The secret half of a mailbox: its credential, and those of its app passwords. */
export interface MailboxCredential extends Credential {
  /** The app passwords' credentials, in the order of the config's `appPasswords`; their names and protocols are in the config. */
  readonly appPasswords?: readonly Credential[];
}

/** The manifest's parameter, below the stack's path. */
export const MANIFEST_PARAMETER = "manifest";

/** Arguments of {@link MailParameters}. */
export interface MailParametersArgs {
  /** The validated configuration: decides the files, and which keys take a parameter. */
  readonly config: MailConfig;
  /**
   * SSM path all parameters go under, e.g. /mailstack/myproject/prod/mail (MailStack's default,
   * `/mailstack/<project>/<stack>/<name>`). One path per stack: it is also the salt's context
   * of the password hashes and, below `host/`, where the runtime object is.
   */
  readonly path: string;
  /**
   * The bucket (MailBackup's) that holds the runtime object, at `host/<path>/runtime.json`,
   * where MailHost's role may read it.
   */
  readonly bucket: pulumi.Input<string>;
  /** The bucket's customer-managed KMS key, which encrypts the object. Default: the `aws/s3` key. */
  readonly kmsKeyArn?: pulumi.Input<string>;
  /** Credentials in the order of the input's mailboxes, which `Mailbox.index` points into. */
  readonly credentials: readonly MailboxCredential[];
  /** PEM private key of the DKIM selector in `config`. */
  readonly dkimPrivateKeyPem: pulumi.Input<string>;
  /** PEM private key of the host's TLS certificate, kept across renewals (TLSA pins it). */
  readonly tlsPrivateKeyPem: pulumi.Input<string>;
  /**
   * Password of the host's restic repository (MailBackup's), delivered as the runtime file
   * `backup/restic-password`: printable ASCII, at most 128 characters.
   */
  readonly resticPassword: pulumi.Input<string>;
  /**
   * Password of the LDAP directory's bind account, with `config.ldap`: delivered in the
   * runtime key files `ldap/dovecot-bind` and `ldap/postfix-map.cf`, never in the object.
   */
  readonly ldapBindPassword?: pulumi.Input<string>;
  /**
   * The SES relay's SMTP user name and password (MailSes's `smtpCredentials`, a secret), with
   * `config.ses.outbound`: delivered in the runtime key file `ses/smtp-credentials`, a
   * SecureString parameter of its own, never in the object. Required with sesOutbound,
   * refused without it.
   */
  readonly sesSmtpCredentials?: pulumi.Input<SesSmtpCredentials>;
  /** Tags for every parameter and the object. Default none. */
  readonly tags?: Readonly<Record<string, string>>;
}

/**
 * The stack's runtime files (Dovecot users with password hashes, Postfix maps, DKIM and TLS
 * keys, the restic password, the SES relay's credentials): each key in a SecureString
 * parameter of its own under one path, every other file in one KMS-encrypted object in the
 * backup bucket, and the manifest the host checks them all against. Which parameters exist
 * depends only on the configuration (its DKIM signing selector, sesOutbound, ldap), never on
 * the number of mailboxes, so the set is known before any secret resolves.
 */
export class MailParameters extends pulumi.ComponentResource {
  /** The SSM path holding every parameter. */
  readonly path: string;
  /** Every parameter, the manifest last. */
  readonly parameters: ssm.Parameter[] = [];
  /** The object holding every runtime file that is not a key. */
  readonly object: s3.BucketObjectv2;

  constructor(name: string, args: MailParametersArgs, opts?: pulumi.ComponentResourceOptions) {
    const { config } = args;
    const outbound = config.ses?.outbound === true;
    if (outbound !== (args.sesSmtpCredentials !== undefined)) {
      // Before super(): a refused component is not registered at all; the message names it.
      const problem = outbound ? "is required with sesOutbound: give MailSes's smtpCredentials" : "is given, but without sesOutbound nothing relays through SES; leave it out";
      throw new pulumi.ResourceError(`MailParameters ${name}: sesSmtpCredentials: ${problem}`, undefined);
    }
    super("mailstack:aws:MailParameters", name, {}, opts);
    this.path = args.path;
    // Inputs as given: wrapping each in an Output first would cost two more per mailbox, a
    // tenth of a thousand-mailbox plan.
    // Every credential, the mailboxes' and then their app passwords': its key (an address, or
    // appPasswordKey), its kind, its field's path, and what is given.
    const entries = [
      ...config.mailboxes.map((m) => {
        const given = args.credentials[m.index];
        return { key: m.address, address: m.address, kind: m.credential, path: `mailboxes[${m.index}]`, minLength: undefined, value: given };
      }),
      ...config.mailboxes.flatMap((m) =>
        m.appPasswords.map((a, j) => {
          const given = args.credentials[m.index].appPasswords?.[j] ?? {};
          const path = `mailboxes[${m.index}].appPasswords[${j}]`;
          return { key: appPasswordKey(m.address, a.name), address: m.address, kind: a.credential, path, minLength: MIN_APP_PASSWORD_LENGTH, value: given };
        }),
      ),
    ];
    const credentials: pulumi.Input<string | undefined>[] = entries.map((e) => (e.kind === "password" ? e.value.password : e.value.passwordHash));
    // Secret values are checked once they resolve (a preview resolves them too), before any is hashed.
    const checked = pulumi.all([pulumi.all(credentials), args.resticPassword]).apply(([secrets, resticPassword]) => {
      const issues: ConfigIssue[] = [];
      // Plain passwords by mailbox, to refuse an app password that repeats another secret of it.
      const plain = new Map<string, Map<string, string>>();
      entries.forEach((e, i) => {
        const path = `${e.path}.${e.kind}`;
        const problem = e.kind === "password" ? checkPassword(secrets[i], e.address, e.minLength) : checkPasswordHash(secrets[i]);
        if (problem) issues.push({ path, message: problem });
        if (e.kind !== "password" || typeof secrets[i] !== "string") return;
        const seen = plain.get(e.address) ?? new Map<string, string>();
        const same = seen.get(secrets[i]);
        if (same !== undefined) issues.push({ path, message: `is the same as ${same}; an app password must be a secret of its own, or revoking it revokes nothing` });
        seen.set(secrets[i], path);
        plain.set(e.address, seen);
      });
      if (!/^[\x21-\x7e]+$/.test(resticPassword) || resticPassword.length > MAX_RESTIC_PASSWORD_LENGTH) {
        issues.push({ path: "resticPassword", message: `must be 1 to ${MAX_RESTIC_PASSWORD_LENGTH} printable ASCII characters without spaces` });
      }
      if (issues.length > 0) throw new MailStackConfigError(issues);
      const byKind = (kind: "password" | "passwordHash") => Object.fromEntries(entries.flatMap((e, i): [string, string][] => (e.kind === kind ? [[e.key, secrets[i] as string]] : [])));
      const hashes = Object.fromEntries(Object.entries(byKind("passwordHash")).map(([key, hash]) => [key, hash.trim()]));
      return { passwords: byKind("password"), hashes, resticPassword };
    });
    // Only credentials given by plain password need hashing; which ones is known from the config.
    const hashed = entries.some((e) => e.kind === "password")
      ? new PasswordHashes(`${name}-password-hashes`, { context: args.path, passwords: checked.passwords }, { parent: this }).hashes
      : pulumi.output<Record<string, string>>({});
    const region = getRegionOutput({}, { parent: this }).region;
    const dnsSuffix = getPartitionOutput({}, { parent: this }).dnsSuffix;
    const location = pulumi.all([args.bucket, region, dnsSuffix]).apply(([bucket, region, dnsSuffix]) => ({
      bucket,
      key: `${hostObjectsPrefix(args.path)}/${HOST_OBJECTS.runtime}`,
      endpoint: `https://s3.${region}.${dnsSuffix}`,
    }));
    // Checked, like the passwords, once it resolves; only with a directory.
    const ldapBindPassword = pulumi.output(config.ldap === undefined ? undefined : args.ldapBindPassword).apply((password) => {
      if (config.ldap === undefined) return undefined;
      const problem = password === undefined ? "is required with ldap: give the bind account's password" : bindPasswordProblem(password);
      if (problem) throw new MailStackConfigError([{ path: "ldap.bindPassword", message: problem }]);
      return password;
    });
    const delivery = pulumi
      .all([checked, hashed, args.dkimPrivateKeyPem, args.tlsPrivateKeyPem, location, ldapBindPassword, args.sesSmtpCredentials])
      .apply(([{ hashes, resticPassword }, fromPasswords, dkimPrivateKeyPem, tlsPrivateKeyPem, location, ldapBindPassword, sesSmtpCredentials]) => {
        const passwordHashes = new Map(Object.entries({ ...hashes, ...fromPasswords }));
        return runtimeDelivery(runtimeFiles(config, { passwordHashes, dkimPrivateKeyPem, tlsPrivateKeyPem, resticPassword, ldapBindPassword, sesSmtpCredentials }), location);
      });
    const secret = pulumi.secret(delivery);

    // A stable key, updated in place: a host that reads it between this update and the
    // manifest's finds hashes that do not match yet, and tries again.
    this.object = new s3.BucketObjectv2(
      `${name}-runtime`,
      {
        bucket: args.bucket,
        key: location.key,
        content: secret.object,
        contentType: "application/json",
        serverSideEncryption: "aws:kms",
        kmsKeyId: args.kmsKeyArn,
        // Object Lock, when the bucket has it, requires a checksum.
        checksumAlgorithm: "SHA256",
        tags: args.tags,
      },
      { parent: this },
    );

    const parameter = (key: string, suffix: string, value: pulumi.Input<string>, description: string, dependsOn: pulumi.Resource[] = []) =>
      new ssm.Parameter(
        `${name}-${key}`,
        {
          name: `${args.path}/${suffix}`,
          type: "SecureString",
          // Standard (free, 4 KB) unless a value needs the advanced tier's 8 KB.
          tier: "Intelligent-Tiering",
          value,
          description,
          tags: args.tags,
        },
        { parent: this, dependsOn },
      );

    for (const file of keyFileNames(config)) {
      const suffix = keyParameterName(file);
      const value = secret.parameters.apply((all) => {
        const found = all.find((p) => p.name === suffix);
        if (!found) throw new Error(`parameter ${suffix} missing from the rendered values`);
        return found.value;
      });
      this.parameters.push(parameter(file.replace(/[^a-z0-9-]/gi, "-"), suffix, value, `mailstack runtime file for ${config.hostname}`));
    }
    // Written after every key and the object, so a host that sees the new manifest finds what it names.
    this.parameters.push(
      parameter("manifest", MANIFEST_PARAMETER, secret.manifest, `mailstack runtime files of ${config.hostname}: their hashes and where they are`, [...this.parameters, this.object]),
    );
    this.registerOutputs({ path: this.path });
  }
}
