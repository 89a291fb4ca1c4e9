import { spkiSha256 } from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";

/**
 * The private key of the host's TLS certificate (ECDSA P-256). Pulumi owns it rather than the
 * host, so the key survives instance replacement and every renewal: a TLSA 3 1 1 record (DANE)
 * pins its public half and stays valid without DNS changes. It reaches the host only as an SSM
 * SecureString; Let's Encrypt signs a request made with it.
 */
export class TlsKey extends pulumi.ComponentResource {
  /** PEM private key, secret. */
  readonly privateKeyPem: pulumi.Output<string>;
  /** Hex SHA-256 of the public key (SubjectPublicKeyInfo): the TLSA 3 1 1 data. */
  readonly publicKeySha256: pulumi.Output<string>;

  constructor(name: string, args: Record<string, never> = {}, opts?: pulumi.ComponentResourceOptions) {
    super("mailstack:tls:TlsKey", name, args, opts);
    const key = new tls.PrivateKey(
      `${name}-key`,
      { algorithm: "ECDSA", ecdsaCurve: "P256" },
      { parent: this, additionalSecretOutputs: ["privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"] },
    );
    this.privateKeyPem = pulumi.secret(key.privateKeyPem);
    this.publicKeySha256 = key.publicKeyPem.apply(spkiSha256);
    this.registerOutputs({ publicKeySha256: this.publicKeySha256 });
  }
}
