import type { ConfigContext } from "./context";

/** An existing VPC comes with the subnet to use in it: mailstack looks up default subnets only in the default VPC. */
export function vpcNeedsSubnet(ctx: ConfigContext): void {
  if (ctx.input.vpcId && !ctx.input.subnetId) {
    ctx.fail("subnetId", "is required when vpcId is set: name the public subnet the mail host goes into");
  }
}
