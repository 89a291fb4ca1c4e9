// The folder's index by name: a config.js left in dist by a build from before the split
// would otherwise be loaded instead.
export * from "./config/index";
export * from "./names";
export * from "./instance-types";
export * from "./passwords";
export * from "./dns";
export * from "./layout";
export * from "./runtime-files";
export * from "./postfix";
export * from "./dovecot";
export * from "./rspamd";
export * from "./firewall";
export * from "./backup";
export * from "./host";
export * from "./bundle";
export * from "./cloud-init";
export * from "./web";
export * from "./ldap";
export * from "./monitoring";
export * from "./ses";
