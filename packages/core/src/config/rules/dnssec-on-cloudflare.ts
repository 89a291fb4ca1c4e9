import type { ConfigContext } from "./context";

/** DNSSEC is managed only on Cloudflare; Route 53 signing needs a KMS key the stack does not make. */
export function dnssecOnCloudflare(ctx: ConfigContext): void {
  if (ctx.input.dnssec && ctx.input.dnsProvider !== "cloudflare") {
    ctx.fail("dnssec", "is only managed on Cloudflare; with Route 53, enable DNSSEC signing in Route 53 yourself (it needs a KMS key in us-east-1) and leave this false");
  }
}
