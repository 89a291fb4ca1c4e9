import * as pulumi from "@pulumi/pulumi";

/**
 * What a plan recognises this resource by: every dynamic resource has the same type token.
 */
export const PASSWORD_HASHES_KIND = "mailstack:PasswordHashes";

/** Arguments of {@link PasswordHashes}. */
export interface PasswordHashesArgs {
  /** Salt context (the stack's SSM path): a password hashes alike only within one stack. */
  readonly context: string;
  /** Plain passwords by mailbox address (an app password by appPasswordKey, which also salts it), already checked against the password policy. Kept secret. */
  readonly passwords: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

/** What the provider keeps in the stack's state: the passwords it hashed (secret) and the hashes. */
interface HashState {
  kind: string;
  context: string;
  passwords: Record<string, string>;
  hashes: Record<string, string>;
}

// Resolved where @mailstack/pulumi can always find its own dependency (npm, pnpm, a workspace)
// and captured as a string by the provider's serialized code, which runs in Pulumi's
// dynamic-provider process.
const corePath = require.resolve("@mailstack/core");

/** Hashes of `news`, reusing each one of `old` whose password and context are unchanged. */
async function hashesFor(news: Pick<HashState, "context" | "passwords">, old?: HashState): Promise<Record<string, string>> {
  const { hashPasswordAsync } = require(corePath) as typeof import("@mailstack/core");
  const hashes: Record<string, string> = {};
  for (const [address, password] of Object.entries(news.passwords)) {
    const kept = old !== undefined && old.context === news.context && old.passwords?.[address] === password ? old.hashes?.[address] : undefined;
    hashes[address] = kept ?? (await hashPasswordAsync(password, address, news.context));
  }
  return hashes;
}

const provider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: HashState) {
    return { id: inputs.context, outs: { ...inputs, hashes: await hashesFor(inputs) } };
  },
  // `olds` is the state: a preview with the same passwords compares them and hashes nothing.
  async diff(_id: string, olds: HashState, news: HashState) {
    const before = Object.entries(olds.passwords ?? {});
    const after = news.passwords ?? {};
    const same = olds.context === news.context && before.length === Object.keys(after).length && before.every(([address, password]) => after[address] === password);
    return { changes: !same };
  },
  async update(_id: string, olds: HashState, news: HashState) {
    return { outs: { ...news, hashes: await hashesFor(news, olds) } };
  },
};

/**
 * bcrypt hashes of plain mailbox passwords, kept in the stack's state: a password is hashed
 * once, when it is new or changed (`pulumi up`), never on a preview, so a thousand mailboxes
 * given by password cost nothing per preview. The salt is derived from the context and the
 * address, so the hash of an unchanged password never changes either.
 */
export class PasswordHashes extends pulumi.dynamic.Resource {
  /** `{BLF-CRYPT}` hash by address, a secret. */
  declare readonly hashes: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: PasswordHashesArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      provider,
      name,
      { kind: PASSWORD_HASHES_KIND, context: args.context, passwords: pulumi.secret(args.passwords), hashes: undefined },
      { ...opts, additionalSecretOutputs: ["passwords", "hashes"] },
    );
  }
}
