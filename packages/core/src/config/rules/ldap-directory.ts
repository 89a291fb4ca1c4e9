import { bindPasswordProblem, DEFAULT_USER_FILTERS, parseLdapUrl } from "../ldap-syntax";
import { quotaMiB } from "../quota";
import type { ConfigContext } from "./context";

/**
 * The directory is reached over TLS only (ldaps://, or ldap:// with StartTLS), its bind
 * password is set, and its users are in hosted domains that no catch-all takes. Fills `ldap`.
 */
export function ldapDirectory(ctx: ConfigContext): void {
  const ldap = ctx.input.ldap;
  if (ldap === undefined) return;
  const before = ctx.issues.length;
  const server = parseLdapUrl(ldap.url);
  if (server?.scheme === "ldap" && !ldap.startTls) {
    const port = server.port === 389 ? "" : `:${server.port}`;
    ctx.fail(
      "ldap.url",
      `${JSON.stringify(ldap.url)} is plain LDAP, which would carry the bind password and every user's password in clear; write ldaps://${server.host} (port 636), or keep it and set ldap.startTls: true (ldap://${server.host}${port} upgraded before anything is sent)`,
    );
  }
  if (server?.scheme === "ldaps" && ldap.startTls) ctx.fail("ldap.startTls", "is for ldap:// URLs; an ldaps:// connection is TLS from its first byte: remove startTls");
  if (ldap.bindPassword === undefined || ldap.bindPassword === null) {
    ctx.fail("ldap.bindPassword", `is required with bindDn; set it with \`pulumi config set --secret --path 'ldap.bindPassword'\``);
  } else if (typeof ldap.bindPassword === "string") {
    const problem = bindPasswordProblem(ldap.bindPassword);
    if (problem) ctx.fail("ldap.bindPassword", problem);
  }
  const domains: string[] = [];
  (ldap.domains ?? ctx.domains).forEach((raw, i) => {
    const path = `ldap.domains[${i}]`;
    const domain = ctx.domainAt(path, raw);
    if (domain === undefined) return;
    if (!ctx.domains.includes(domain)) {
      ctx.fail(path, `"${raw}" is not a hosted domain (${ctx.domains.join(", ")}); directory users receive and log in here only in domains this server hosts: add it to extraDomains or remove it`);
    } else if (domains.includes(domain)) {
      ctx.fail(path, `is ${domain} again; list each domain once`);
    } else {
      domains.push(domain);
    }
  });
  if (ldap.domains !== undefined && ldap.domains.length === 0) ctx.fail("ldap.domains", "is empty; name the hosted domains whose users the directory holds, or leave it out for all of them");
  for (const { domain } of ctx.catchAll) {
    if (domains.includes(domain)) {
      ctx.fail(
        "ldap.domains",
        `includes ${domain}, which has a catch-all: Postfix resolves the catch-all before it asks the directory, so the directory users' mail would go to the catch-all; remove catchAll.${domain} or leave ${domain} out of ldap.domains`,
      );
    }
  }
  if (ctx.issues.length > before) return;
  const quota = quotaMiB(ldap.quota);
  const ca = ldap.caCertificate?.trim();
  ctx.ldap = {
    url: ldap.url,
    startTls: ldap.startTls,
    bindDn: ldap.bindDn,
    baseDn: ldap.baseDn,
    userFilter: ldap.userFilter ?? DEFAULT_USER_FILTERS[ldap.flavor],
    mailAttribute: ldap.mailAttribute,
    ...(ca ? { caCertificate: `${ca}\n` } : {}),
    domains: [...domains].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
    cacheSeconds: ldap.cacheSeconds,
    ...(quota === "invalid" || quota === undefined ? {} : { quotaMiB: quota }),
  };
}
