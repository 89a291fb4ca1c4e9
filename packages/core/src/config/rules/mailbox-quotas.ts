import { quotaProblem } from "../quota";
import type { ConfigContext } from "./context";

/** Each mailbox quota is a size from 1 MiB to 1024T, or unlimited. */
export function mailboxQuotas(ctx: ConfigContext): void {
  ctx.input.mailboxes.forEach((m, i) => {
    const problem = quotaProblem(m.quota);
    if (problem) ctx.fail(`mailboxes[${i}].quota`, problem);
  });
}
