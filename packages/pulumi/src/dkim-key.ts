import { dkimPublicKeyFromPem, dkimRecordValue } from "@mailstack/core";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";

/** Arguments of {@link DkimKey}. */
export interface DkimKeyArgs {
  /** DKIM selector the key is published under (`<selector>._domainkey.<domain>`). */
  readonly selector: string;
}

/**
 * An RSA-2048 DKIM signing key (RFC 8301 recommends 2048; 4096 overflows some resolvers'
 * UDP answers). The private key exists only as a Pulumi secret and in SSM on its way to
 * rspamd; the public half becomes the DKIM TXT record.
 */
export class DkimKey extends pulumi.ComponentResource {
  /** The selector the key signs with. */
  readonly selector: string;
  /** PEM private key (PKCS#1), secret. */
  readonly privateKeyPem: pulumi.Output<string>;
  /** Base64 SubjectPublicKeyInfo: the `p=` tag of the record. */
  readonly publicKey: pulumi.Output<string>;
  /** The full TXT value, `v=DKIM1; k=rsa; p=…`, before splitting into 255-byte strings. */
  readonly recordValue: pulumi.Output<string>;

  constructor(name: string, args: DkimKeyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("mailstack:dkim:DkimKey", name, {}, opts);
    this.selector = args.selector;
    const key = new tls.PrivateKey(
      `${name}-key`,
      { algorithm: "RSA", rsaBits: 2048 },
      { parent: this, additionalSecretOutputs: ["privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"] },
    );
    this.privateKeyPem = pulumi.secret(key.privateKeyPem);
    this.publicKey = key.publicKeyPem.apply(dkimPublicKeyFromPem);
    this.recordValue = this.publicKey.apply(dkimRecordValue);
    this.registerOutputs({ selector: this.selector, publicKey: this.publicKey, recordValue: this.recordValue });
  }
}
