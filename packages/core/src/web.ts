import type { MailConfig } from "./config";
import { mtaStsPolicy } from "./dns";
import { generatedHeader, type HostEnv, PRODUCTION_ENV } from "./layout";
import { INTERMEDIATE_CIPHERS } from "./postfix";

/** The files below the web root, the same for every config ({@link webFiles}). */
export const WEB_FILES = [".well-known/mta-sts.txt", "mail/config-v1.1.xml", "autodiscover/autodiscover.xml"] as const;

/**
 * What the host serves over HTTPS (port 443), by path below the web root: the MTA-STS policy
 * and the client-configuration documents. Each is the same for every mail domain, and all of
 * them change with the configuration, so they travel as runtime files (SSM), not user data.
 */
export function webFiles(config: MailConfig, env: HostEnv = PRODUCTION_ENV): Record<(typeof WEB_FILES)[number], string> {
  return {
    ".well-known/mta-sts.txt": mtaStsPolicy(config),
    "mail/config-v1.1.xml": thunderbirdConfig(config, env),
    "autodiscover/autodiscover.xml": outlookConfig(config, env),
  };
}

const xmlEscape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** Mozilla's autoconfig format (Thunderbird, K-9/Thunderbird for Android, Evolution, …). */
function thunderbirdConfig(config: MailConfig, env: HostEnv): string {
  const host = xmlEscape(config.hostname);
  const server = (tag: "incomingServer" | "outgoingServer", type: string, port: number, socket: string) =>
    `    <${tag} type="${type}">
      <hostname>${host}</hostname>
      <port>${port}</port>
      <socketType>${socket}</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </${tag}>
`;
  return `<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="${xmlEscape(config.domain)}">
${config.domains.map((d) => `    <domain>${xmlEscape(d)}</domain>\n`).join("")}    <displayName>${xmlEscape(config.domain)} mail</displayName>
${server("incomingServer", "imap", env.ports.imaps, "SSL")}${config.pop3 ? server("incomingServer", "pop3", env.ports.pop3s, "SSL") : ""}${server("outgoingServer", "smtp", env.ports.submissions, "SSL")}${server("outgoingServer", "smtp", env.ports.submission, "STARTTLS")}  </emailProvider>
</clientConfig>
`;
}

/**
 * Outlook's POX autodiscover answer. Outlook POSTs the address it wants settings for; the
 * answer is the same for every mailbox, because the login name is the address itself.
 */
function outlookConfig(config: MailConfig, env: HostEnv): string {
  const protocol = (type: string, port: number, encryption: string) => `      <Protocol>
        <Type>${type}</Type>
        <Server>${xmlEscape(config.hostname)}</Server>
        <Port>${port}</Port>
        <LoginName></LoginName>
        <DomainRequired>off</DomainRequired>
        <SPA>off</SPA>
        <Encryption>${encryption}</Encryption>
        <AuthRequired>on</AuthRequired>
      </Protocol>
`;
  return `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
    <Account>
      <AccountType>email</AccountType>
      <Action>settings</Action>
${protocol("IMAP", env.ports.imaps, "SSL")}${config.pop3 ? protocol("POP3", env.ports.pop3s, "SSL") : ""}${protocol("SMTP", env.ports.submissions, "SSL")}    </Account>
  </Response>
</Autodiscover>
`;
}

/**
 * nginx on port 443 only, serving the web root read-only and nothing else. Port 80 stays with
 * certbot's standalone HTTP-01 responder. Every mail domain's mta-sts., autoconfig. and
 * autodiscover. names reach this server and get the same files.
 */
export function nginxSite(env: HostEnv = PRODUCTION_ENV): string {
  const p = env.paths;
  return `${generatedHeader()}server {
    listen 443 ssl default_server;
    listen [::]:443 ssl default_server;
    ssl_certificate ${p.tlsCert};
    ssl_certificate_key ${p.tlsKey};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ${INTERMEDIATE_CIPHERS};
    ssl_prefer_server_ciphers off;
    server_tokens off;
    root ${p.runtime}/www;
    add_header Strict-Transport-Security "max-age=31536000" always;
    # Types come from the mime.types Ubuntu's nginx.conf includes: text/plain for the policy,
    # as RFC 8461 requires, and text/xml for the client settings.
    location = /.well-known/mta-sts.txt { }
    location = /mail/config-v1.1.xml { }
    # Outlook POSTs its request; a static file only answers GET unless 405 is turned into 200.
    location ~* ^/autodiscover/autodiscover\\.xml$ {
        error_page 405 =200 /autodiscover/autodiscover.xml;
        try_files /autodiscover/autodiscover.xml =404;
    }
    location / { return 404; }
}
`;
}
