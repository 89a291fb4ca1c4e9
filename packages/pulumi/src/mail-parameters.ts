import {
  checkPassword,
  checkPasswordHash,
  type ConfigIssue,
  MAX_RESTIC_PASSWORD_LENGTH,
  type MailConfig,
  parameterLayout,
  parameterValues,
  partName,
  runtimeFiles,
} from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";
import * as ssm from "@pulumi/aws/ssm";
import { MailStackConfigError } from "./config-error";
import { PasswordHashes } from "./password-hashes";

/** The secret half of a mailbox: exactly one of the two, usually a Pulumi secret. */
export interface MailboxCredential {
  /** The password in plain text; hashed with bcrypt before it is stored. */
  readonly password?: pulumi.Input<string>;
  /** A hash made elsewhere (`doveadm pw`): BLF-CRYPT, SHA512-CRYPT, SHA256-CRYPT, ARGON2ID or ARGON2I. */
  readonly passwordHash?: pulumi.Input<string>;
}

/** Arguments of {@link MailParameters}. */
export interface MailParametersArgs {
  /** The validated configuration: decides the files and how many parameters each takes. */
  readonly config: MailConfig;
  /** SSM path all parameters go under, e.g. /mailstack/prod/mail. One path per stack. */
  readonly path: string;
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
  /** Tags for every parameter. Default none. */
  readonly tags?: Readonly<Record<string, string>>;
}

/**
 * The stack's runtime files (Dovecot users with password hashes, Postfix maps, DKIM and TLS
 * keys, the restic password) as SecureString parameters under one path, plus the manifest the
 * host checks them against.
 * Files larger than one parameter are split; the split depends only on the configuration,
 * so the set of parameters is known before any secret resolves.
 */
export class MailParameters extends pulumi.ComponentResource {
  /** The SSM path holding every parameter. */
  readonly path: string;
  /** Every parameter, the manifest last. */
  readonly parameters: ssm.Parameter[] = [];

  constructor(name: string, args: MailParametersArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mailstack:aws:MailParameters", name, {}, opts);
    const { config } = args;
    this.path = args.path;
    const layout = parameterLayout(config);

    const credentials = config.mailboxes.map((m) => {
      const given = args.credentials[m.index];
      return pulumi.output(m.credential === "password" ? given.password : given.passwordHash);
    });
    // Secret values are checked once they resolve (a preview resolves them too), before any is hashed.
    const checked = pulumi.all([pulumi.all(credentials), args.resticPassword]).apply(([secrets, resticPassword]) => {
      const issues: ConfigIssue[] = [];
      config.mailboxes.forEach((m, i) => {
        const problem = m.credential === "password" ? checkPassword(secrets[i], m.address) : checkPasswordHash(secrets[i]);
        if (problem) issues.push({ path: `mailboxes[${m.index}].${m.credential}`, message: problem });
      });
      if (!/^[\x21-\x7e]+$/.test(resticPassword) || resticPassword.length > MAX_RESTIC_PASSWORD_LENGTH) {
        issues.push({ path: "resticPassword", message: `must be 1 to ${MAX_RESTIC_PASSWORD_LENGTH} printable ASCII characters without spaces` });
      }
      if (issues.length > 0) throw new MailStackConfigError(issues);
      const byKind = (kind: "password" | "passwordHash") =>
        Object.fromEntries(config.mailboxes.flatMap((m, i): [string, string][] => (m.credential === kind ? [[m.address, secrets[i] as string]] : [])));
      const hashes = Object.fromEntries(Object.entries(byKind("passwordHash")).map(([address, hash]) => [address, hash.trim()]));
      return { passwords: byKind("password"), hashes, resticPassword };
    });
    // Only mailboxes given by plain password need hashing; which ones is known from the config.
    const hashed = config.mailboxes.some((m) => m.credential === "password")
      ? new PasswordHashes(`${name}-password-hashes`, { context: args.path, passwords: checked.passwords }, { parent: this }).hashes
      : pulumi.output<Record<string, string>>({});
    const values = pulumi
      .all([checked, hashed, args.dkimPrivateKeyPem, args.tlsPrivateKeyPem])
      .apply(([{ hashes, resticPassword }, fromPasswords, dkimPrivateKeyPem, tlsPrivateKeyPem]) => {
        const passwordHashes = new Map(Object.entries({ ...hashes, ...fromPasswords }));
        return parameterValues(runtimeFiles(config, { passwordHashes, dkimPrivateKeyPem, tlsPrivateKeyPem, resticPassword }), layout);
      });
    const secretValues = pulumi.secret(values);

    const parameter = (key: string, suffix: string, value: pulumi.Input<string>, dependsOn: pulumi.Resource[] = []) =>
      new ssm.Parameter(
        `${name}-${key}`,
        {
          name: `${args.path}/${suffix}`,
          type: "SecureString",
          // Standard (free, 4 KB) unless a part needs the advanced tier's 8 KB.
          tier: "Intelligent-Tiering",
          value,
          description: `mailstack runtime file for ${config.hostname}`,
          tags: args.tags,
        },
        { parent: this, dependsOn },
      );

    for (const [file, count] of Object.entries(layout.parts)) {
      for (let i = 0; i < count; i++) {
        const suffix = partName(file, i);
        const value = secretValues.apply((v) => {
          const part = v.parts.find((p) => p.name === suffix);
          if (!part) throw new Error(`parameter ${suffix} missing from the rendered values`);
          return part.value;
        });
        this.parameters.push(parameter(`${file.replace(/[^a-z0-9-]/gi, "-")}-${i}`, suffix, value));
      }
    }
    // Written after every part, so a host that sees the new manifest finds the parts it names.
    this.parameters.push(parameter("manifest", "manifest", secretValues.apply((v) => v.manifest), [...this.parameters]));
    this.registerOutputs({ path: this.path });
  }
}
