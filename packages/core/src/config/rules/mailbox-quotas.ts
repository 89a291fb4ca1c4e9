import { quotaMiB } from "../quota";
import type { ConfigContext } from "./context";

/** Each mailbox quota is a size of at least 1 MiB, or unlimited. */
export function mailboxQuotas(ctx: ConfigContext): void {
  ctx.input.mailboxes.forEach((m, i) => {
    if (quotaMiB(m.quota) === "invalid") ctx.fail(`mailboxes[${i}].quota`, `"${m.quota}" is not a size; write e.g. 500M, 5G, 1T or unlimited`);
  });
}
