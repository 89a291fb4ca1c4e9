import type { ConfigContext } from "./context";

/**
 * A mailbox's own sendingLimits hold only the hourly limits: recipientsPerMessage is Postfix's
 * smtpd_recipient_limit, one setting for the whole host.
 */
export function mailboxSendingLimits(ctx: ConfigContext): void {
  ctx.input.mailboxes.forEach((m, i) => {
    if (m.sendingLimits?.recipientsPerMessage === undefined) return;
    ctx.fail(
      `mailboxes[${i}].sendingLimits.recipientsPerMessage`,
      `cannot differ per mailbox: it is Postfix's smtpd_recipient_limit, one setting for the whole host; remove it here and set sendingLimits.recipientsPerMessage (now ${ctx.input.sendingLimits.recipientsPerMessage}) instead`,
    );
  });
}
