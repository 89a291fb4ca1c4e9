import {
  checkPassword,
  checkPasswordHash,
  ConfigError,
  type ConfigIssue,
  hashPassword,
  type MailConfig,
  parameterLayout,
  parameterValues,
  partName,
  runtimeFiles,
} from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";
import * as ssm from "@pulumi/aws/ssm";

/** The secret half of a mailbox: exactly one of the two, usually a Pulumi secret. */
export interface MailboxCredential {
  password?: pulumi.Input<string>;
  passwordHash?: pulumi.Input<string>;
}

export interface MailParametersArgs {
  /** The validated configuration: decides the files and how many parameters each takes. */
  config: MailConfig;
  /** SSM path all parameters go under, e.g. /mailstack/prod/mail. One path per stack. */
  path: string;
  /** Credentials in the order of the input's mailboxes, which `Mailbox.index` points into. */
  credentials: readonly MailboxCredential[];
  /** PEM private key of the DKIM selector in `config`. */
  dkimPrivateKeyPem: pulumi.Input<string>;
  /** Password of the host's restic repository. */
  resticPassword: pulumi.Input<string>;
  tags?: Record<string, string>;
}

/**
 * The stack's runtime files (Dovecot users with password hashes, Postfix maps, DKIM keys) as
 * SecureString parameters under one path, plus the manifest the host checks them against.
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
    const values = pulumi
      .all([pulumi.all(credentials), args.dkimPrivateKeyPem, args.resticPassword])
      .apply(([secrets, dkimPrivateKeyPem, resticPassword]) => {
        const issues: ConfigIssue[] = [];
        const passwordHashes = new Map<string, string>();
        config.mailboxes.forEach((m, i) => {
          const field = m.credential;
          const path = `mailboxes[${m.index}].${field}`;
          const secret = secrets[i];
          const problem = field === "password" ? checkPassword(secret, m.address) : checkPasswordHash(secret);
          if (problem) issues.push({ path, message: problem });
          else passwordHashes.set(m.address, field === "password" ? hashPassword(secret as string, m.address, args.path) : (secret as string).trim());
        });
        if (issues.length > 0) throw new ConfigError(issues);
        return parameterValues(runtimeFiles(config, { passwordHashes, dkimPrivateKeyPem, resticPassword }), layout);
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
