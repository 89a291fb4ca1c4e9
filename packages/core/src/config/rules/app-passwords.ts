import { APP_PASSWORD_SERVICES, MAX_APP_PASSWORDS } from "../fields";
import { MIN_APP_PASSWORD_LENGTH } from "../password-policy";
import type { ConfigContext } from "./context";

const NAME = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;

/**
 * Each app password has a name of its own within its mailbox, exactly one credential, and
 * protocols the host offers; a mailbox that refuses its own password has one to log in with.
 * Plain-string values meet the password policy (longer than a mailbox password: an app
 * password is typed once, into a client) and differ from the mailbox's password and from one
 * another. Secret values get the same checks in the component once they resolve.
 */
export function appPasswords(ctx: ConfigContext): void {
  const addresses = new Map(ctx.mailboxes.map((m) => [m.index, m.address]));
  ctx.input.mailboxes.forEach((m, i) => {
    const path = `mailboxes[${i}]`;
    const address = addresses.get(i);
    if (m.appPasswords.length > MAX_APP_PASSWORDS) {
      ctx.fail(`${path}.appPasswords`, `has ${m.appPasswords.length} app passwords; a mailbox may have at most ${MAX_APP_PASSWORDS}, so remove the ones no client uses any more`);
    }
    if (m.requireAppPasswords && m.appPasswords.length === 0) {
      ctx.fail(`${path}.requireAppPasswords`, "refuses the mailbox's password, and it has no app password: nothing could log in; add one under appPasswords first, or set requireAppPasswords to false");
    }
    const names = new Map<string, number>();
    const plain = new Map<string, string>();
    if (typeof m.password === "string") plain.set(m.password, `${path}.password`);
    m.appPasswords.forEach((a, j) => {
      const at = `${path}.appPasswords[${j}]`;
      if (typeof a.name !== "string" || !NAME.test(a.name)) {
        ctx.fail(`${at}.name`, `${JSON.stringify(a.name)} must be 1 to 32 lower-case letters, digits and inner hyphens, e.g. "phone" or "work-laptop"`);
      } else if (names.has(a.name)) {
        ctx.fail(`${at}.name`, `"${a.name}" is already the name of ${path}.appPasswords[${names.get(a.name)}]; give each app password of a mailbox its own name`);
      } else {
        names.set(a.name, j);
      }
      ctx.credentialAt(at, a, address, MIN_APP_PASSWORD_LENGTH);
      if (typeof a.password === "string") {
        const same = plain.get(a.password);
        if (same !== undefined) ctx.fail(`${at}.password`, `is the same as ${same}; an app password must be a secret of its own, or revoking it revokes nothing`);
        else plain.set(a.password, `${at}.password`);
      }
      const services = a.services ?? [];
      if (a.services !== undefined && services.length === 0) {
        ctx.fail(`${at}.services`, `is empty, so it could log in nowhere; list some of ${APP_PASSWORD_SERVICES.join(", ")}, or leave services out for all`);
      }
      services.forEach((service, k) => {
        if (services.indexOf(service) !== k) ctx.fail(`${at}.services[${k}]`, `lists "${service}" twice`);
        if (service === "pop3" && !ctx.input.pop3) ctx.fail(`${at}.services[${k}]`, `is "pop3", which this host does not offer; set pop3: true, or remove it`);
      });
    });
  });
}
