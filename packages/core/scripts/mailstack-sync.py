#!/usr/bin/python3
"""Keep this host's files as its stack publishes them: the host bundle, then the runtime files.

Each run reads every SSM parameter under the stack's path once. The `host-bundle` parameter
points at the host bundle: every host file (daemon configuration, scripts, units) in one JSON
document in S3, named by its SHA-256. A new bundle's changed files are first staged and shown
to their daemons' own checkers through an overlay mount private to the checker; only if every
checker accepts them are they switched in, and the units that read them reloaded. Units that do
not come back get the previous files back. A bundle refused or rolled back is never tried again:
the same bytes would fail the same way. The outcome goes to the `status/host-bundle` parameter.

The runtime files (users, maps, keys) come with a manifest of each file's SHA-256: the keys
each in a SecureString parameter, the others in one object in S3 that the manifest names. Every
file is checked against the manifest before any is written, so a sync that races a `pulumi up`
installs nothing and retries later. What a runtime file may be comes from the host bundle's
table, not from the manifest: its name, mode, owner, the units it reloads and the grammar its
content must parse by. A manifest that names another file or states another mode, owner or
unit, or a file that does not parse, is refused with the whole update. Changed files are
replaced atomically, and only the units that read them are reloaded. The IMAP and POP3
sessions of users whom a new users file drops (a mailbox removed or disabled) or gives another
password, or whose app passwords lose one or refuse its own password, are then ended
(`doveadm kick`), so that a session does not outlive its password.

--install-bundle installs, unchecked, the bundle that the first boot fetched; --rollback (by
hand) returns to the bundle that ran before the current one.

Exit status: 0; 75 when SSM or S3 could not be read or the bundle is not there yet (retried);
1 when a bundle or the runtime files were refused on this run, a bundle rolled back, this host
cannot run the checks, or AWS refused a request.

Settings come from the environment, as /etc/default/mailstack sets it: the unit's
EnvironmentFile, or the bootstrap, which exports it. Arguments override them (tests).
"""

import argparse
import contextlib
import datetime
import fcntl
import grp
import hashlib
import ipaddress
import json
import os
import pwd
import re
import shlex
import subprocess
import sys
import tempfile
import time

EX_TEMPFAIL = 75
# What the overlay mounts exit with when they fail, before a checker runs: a fault of this
# host, for which the bundle must not be refused.
CANNOT_CHECK = 125
POINTER = "host-bundle"
STATUS = "status/host-bundle"
RETRIES = {"max_attempts": 8, "mode": "standard"}
SHA256 = re.compile(r"[0-9a-f]{64}")
# Below a top-level directory: the checks mount one overlay per top-level directory, never /.
BUNDLE_PATH = re.compile(r"(/[^/\0]+){2,}")
MODE = re.compile(r"0[0-7]{3}")
OWNER = re.compile(r"[^:\s]+:[^:\s]+")


def say(message, problem=False):
    # Flushed: the journal interleaves stdout and stderr as they are written.
    print("mailstack-sync: %s" % message, file=sys.stderr if problem else sys.stdout, flush=True)


class Stale(Exception):
    """The parameters do not (yet) agree with the manifest."""


class Refused(Exception):
    """A bundle document that is not installed, for good: the reason."""


class CannotCheck(Exception):
    """This host cannot run the checks; the bundle may be fine."""


class Unacceptable(Exception):
    """Runtime files this host does not take: the manifest names a file, mode, owner or unit
    other than its table's, or a file does not parse by its grammar. The reason, one line."""


# --- what a runtime file may be ----------------------------------------------------------------

TABLE_VERSION = 1
# Names of the same shapes as the core's checks give them: lower-case ASCII, punycode for IDNs.
LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DOMAIN = re.compile(r"(?:%s\.)+%s" % (LABEL, LABEL))
# The host's own names (localhost) in the alias maps: one label or more.
HOST = r"%s(?:\.%s)*" % (LABEL, LABEL)
LOCAL_PART = r"[a-z0-9_][a-z0-9_-]*(?:\.[a-z0-9_-]+)*"
ADDRESS = re.compile(r"(%s)@(%s)" % (LOCAL_PART, DOMAIN.pattern))
MAP_ADDRESS = r"%s@%s" % (LOCAL_PART, HOST)
MAP_LINE = re.compile(r"(?:%s|%s) (?:OK|%s(?:,%s)*)" % (MAP_ADDRESS, HOST, MAP_ADDRESS, MAP_ADDRESS))
# virtual_alias_maps: an address, or @domain (a catch-all, in this file only), to addresses.
ALIAS_LINE = re.compile(r"(?:%s|@(%s)) %s(?:,%s)*" % (MAP_ADDRESS, DOMAIN.pattern, MAP_ADDRESS, MAP_ADDRESS))
# check_recipient_access: a disabled mailbox's address, refused with 550 5.2.1 and its text.
ACCESS_LINE = re.compile(r"(\S+) 550 5\.2\.1 [\x21-\x7e](?:[\x20-\x7e]{0,198}[\x21-\x7e])?")
# The password hash: {SCHEME} and printable characters but ":" (the field separator).
PASSWD_LINE = re.compile(r"([^:]+):(\{[A-Z0-9.-]+\}[\x21-\x39\x3b-\x7e]+)::::::(?:userdb_quota_rule=\*:storage=[0-9]{1,12}M)?")
# An app password, by mailbox, Dovecot protocol and slot, or the line that refuses a mailbox's
# own password (see the core's appPasswordsFile).
APP_PASSWORD_LINE = re.compile(r"([^/:]+)/(?:(?:imap|pop3|smtp)/[1-9][0-9]?:\{[A-Z0-9.-]+\}[\x21-\x39\x3b-\x7e]+|app-passwords-only:)")
# The LDAP directory's bind password for Dovecot, quoted as its settings reader unquotes it.
DOVECOT_LDAP_BIND_LINE = re.compile(r'dnpass = "(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*"')
# Postfix's ldap table: the settings the core writes, each value one line of printable ASCII.
POSTFIX_LDAP_LINE = re.compile(
    r"(?:server_host|version|start_tls|tls_ca_cert_file|tls_require_cert|bind|bind_dn|bind_pw|search_base|scope|query_filter|result_attribute|domain)"
    r" = [\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?"
)
KEEP_LINE = re.compile(r"--keep-(?:last|hourly|daily|weekly|monthly|yearly)=[0-9]{1,9}")
NFT_ELEMENT = re.compile(r"add element inet mailstack admin_(v4|v6) \{ ([0-9a-f.:/, ]+) \}")
COMMENT = re.compile(r"#[\x20-\x7e]*")
PEM_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,64})-----")
BASE64_LINE = re.compile(r"[A-Za-z0-9+/=]{1,80}")
PRINTABLE_LINE = re.compile(r"[\x20-\x7e]{1,1024}")
# A Postfix SASL client credential: a bracketed next hop with its port, a user name without
# spaces or colons, and a password of printable ASCII without spaces.
SASL_PASSWORD_LINE = re.compile(r"\[[a-z0-9.-]+\]:[0-9]{1,5} [!-9;-~]+:[!-~]+")


def domain(text):
    return len(text) <= 253 and DOMAIN.fullmatch(text) is not None and not text.rsplit(".", 1)[1].isdigit()


def address(text):
    match = ADDRESS.fullmatch(text)
    return match is not None and len(match.group(1)) <= 64 and domain(match.group(2))


def networks(version, text):
    """Whether a list of networks of one IP version, separated by commas, reads as the core writes it."""
    for item in text.split(", "):
        try:
            network = ipaddress.ip_network(item, strict=True)
        except ValueError:
            return False
        # Never the whole internet, as the core's check refuses.
        if "v%d" % network.version != version or network.prefixlen == 0 or "/" not in item:
            return False
    return True


def passwd_entry(line):
    match = PASSWD_LINE.fullmatch(line)
    return match is not None and address(match.group(1))


def app_password_entry(line):
    match = APP_PASSWORD_LINE.fullmatch(line)
    return match is not None and address(match.group(1))


def alias_entry(line):
    match = ALIAS_LINE.fullmatch(line)
    return match is not None and (match.group(1) is None or domain(match.group(1)))


def access_entry(line):
    match = ACCESS_LINE.fullmatch(line)
    return match is not None and address(match.group(1))


def dkim_selector(line):
    name, _, selector = line.partition(" ")
    return domain(name) and re.fullmatch(LABEL, selector) is not None


def nft_admin(line):
    if COMMENT.fullmatch(line):
        return True
    match = NFT_ELEMENT.fullmatch(line)
    return match is not None and networks(*match.groups())


# Each line-based grammar: what a line must be, as the error names it, and its check.
LINE_GRAMMARS = {
    "passwd-file": ("address:{SCHEME}hash::::::[userdb_quota_rule=*:storage=NM]", passwd_entry),
    "app-passwords": ("address/imap|pop3|smtp/slot:{SCHEME}hash, or address/app-passwords-only:", app_password_entry),
    "postfix-map": ("an address or domain, a space, then OK or addresses separated by commas", MAP_LINE.fullmatch),
    "virtual-aliases": ("an address or @domain, a space, then addresses separated by commas", alias_entry),
    "recipient-access": ("an address, a space, 550 5.2.1, a space, then 1-200 printable characters", access_entry),
    "dkim-selectors": ("a domain, a space, a selector", dkim_selector),
    "restic-keep": ("--keep-(last|hourly|daily|weekly|monthly|yearly)=N", KEEP_LINE.fullmatch),
    "nft-admin": ("a comment or add element inet mailstack admin_v4|admin_v6 { networks }", nft_admin),
    "domain-names": ("a domain name", domain),
    "dovecot-ldap-bind": ('dnpass = "password", with " and \\ escaped by \\', DOVECOT_LDAP_BIND_LINE.fullmatch),
    "postfix-ldap": ("an ldap_table setting mailstack writes, =, then a value", POSTFIX_LDAP_LINE.fullmatch),
    "sasl-passwords": ("[host]:port, a space, then user:password", SASL_PASSWORD_LINE.fullmatch),
}


def text_lines(content):
    """The lines of a text file of printable ASCII, each ending in a newline; (line, reason) for the first that is not."""
    try:
        text = content.decode("ascii")
    except UnicodeDecodeError as problem:
        return None, (content.count(b"\n", 0, problem.start) + 1, "is not ASCII")
    lines = text.split("\n")
    if lines.pop() != "":
        return None, (len(lines) + 1, "does not end in a newline")
    return lines, None


def pem_problem(lines):
    """The first line of a key file that is not part of a PEM block, and why."""
    label = None
    for number, line in enumerate(lines, 1):
        if label is None:
            begin = PEM_BEGIN.fullmatch(line)
            if begin is None:
                return number, "is not the -----BEGIN of a PEM block"
            label, body = begin.group(1), 0
        elif line == "-----END %s-----" % label:
            if body == 0:
                return number, "ends a PEM block with nothing in it"
            label = None
        elif BASE64_LINE.fullmatch(line):
            body += 1
        else:
            return number, "is not base64 inside a PEM block"
    if label is not None or not lines:
        return len(lines) + 1, "is missing: no complete PEM block"
    return None


def content_problem(grammar, content):
    """Why a runtime file's content does not parse by its grammar, as (line number, reason); None if it does."""
    if grammar == "static":
        return None
    lines, problem = text_lines(content)
    if problem:
        return problem
    if grammar == "pem":
        return pem_problem(lines)
    if grammar == "password":
        if len(lines) != 1:
            return min(len(lines), 2) or 1, "must be the one line of the password"
        return None if PRINTABLE_LINE.fullmatch(lines[0]) else (1, "is not a line of printable ASCII")
    shape, check = LINE_GRAMMARS[grammar]
    for number, line in enumerate(lines, 1):
        if not check(line):
            return number, "is not %s" % shape
    return None


GRAMMARS = set(LINE_GRAMMARS) | {"static", "pem", "password"}


def load_table(path):
    """The table of runtime files from the host bundle: every rule, checked for its fields."""
    with open(path, encoding="utf-8") as handle:
        table = json.load(handle)
    if not isinstance(table, dict) or table.get("version") != TABLE_VERSION or not isinstance(table.get("files"), list):
        raise ValueError("not a version %d table of runtime files" % TABLE_VERSION)
    rules = []
    for rule in table["files"]:
        fields = {"name": str, "mode": str, "owner": str, "group": str, "reload": list, "key": bool, "grammar": str}
        if not isinstance(rule, dict) or not all(isinstance(rule.get(field), kind) for field, kind in fields.items()):
            raise ValueError("a rule without %s" % ", ".join(fields))
        if rule["grammar"] not in GRAMMARS or not MODE.fullmatch(rule["mode"]) or not all(isinstance(unit, str) for unit in rule["reload"]):
            raise ValueError("%s: grammar %r, mode %r or units this script does not know" % (rule["name"], rule["grammar"], rule["mode"]))
        pattern = rule.get("pattern")
        try:
            rules.append(dict(rule, pattern=None if pattern is None else re.compile(pattern)))
        except (re.error, TypeError) as problem:
            raise ValueError("%s: pattern %r: %s" % (rule["name"], pattern, problem))
    return rules


def rule_of(rules, name):
    """The rule of a file's name: its own, or its family's (a pattern, as for the DKIM keys)."""
    for rule in rules:
        if rule["pattern"] is None and name == rule["name"]:
            return rule
        if rule["pattern"] is not None and rule["pattern"].fullmatch(name):
            return rule
    return None


def check_entry(rules, entry):
    """The table's rule of a manifest entry, which must state exactly what the rule does."""
    name = entry["name"]
    if not isinstance(name, str) or name.startswith("/") or ".." in name.split("/"):
        raise Unacceptable("refusing unsafe file name %r" % (name,))
    rule = rule_of(rules, name)
    if rule is None:
        raise Unacceptable("%r is not a runtime file this host installs" % name)
    for field in ("mode", "owner", "group", "reload"):
        if entry[field] != rule[field]:
            raise Unacceptable("%s: %s %r, where this host's table says %r" % (name, field, entry[field], rule[field]))
    source = "parameter" if rule["key"] else "object"
    if entry["source"] != source:
        raise Unacceptable("%s: from the %s, where this host's table says its %s" % (name, entry["source"], source))
    return rule


def ssm_client(region, endpoint):
    import boto3
    from botocore.config import Config

    return boto3.client("ssm", region_name=region, endpoint_url=endpoint, config=Config(retries=RETRIES))


def fetch(client, prefix):
    values = {}
    for page in client.get_paginator("get_parameters_by_path").paginate(
        Path=prefix, Recursive=True, WithDecryption=True
    ):
        for parameter in page["Parameters"]:
            values[parameter["Name"][len(prefix):].lstrip("/")] = parameter["Value"]
    return values


def assemble(values, get_object, installed, rules):
    """Every runtime file with its rule from the table, checked against the manifest and its
    grammar; get_object fetches the runtime object, which is fetched only if a file in it is not
    installed as the manifest says (installed)."""
    if "manifest" not in values:
        raise Stale("no manifest parameter yet")
    manifest = json.loads(values["manifest"])
    if manifest.get("version") != 2:
        raise Stale("manifest version %r is not the one this script reads (2)" % manifest.get("version"))
    # Every entry before any download: a manifest this host does not take fetches nothing.
    entries = []
    for entry in manifest["files"]:
        rule = check_entry(rules, entry)
        if any(entry["name"] == other["name"] for other, _ in entries):
            raise Unacceptable("%s is listed twice" % entry["name"])
        entries.append((entry, rule))
    in_object = None
    files = {}
    for entry, rule in entries:
        name = entry["name"]
        if entry["source"] == "parameter":
            if "files/%s" % name not in values:
                raise Stale("%s: its parameter is missing" % name)
            content = values["files/%s" % name].encode("utf-8")
        else:
            content = installed(name)
            if content is None or hashlib.sha256(content).hexdigest() != entry["sha256"]:
                if in_object is None:
                    in_object = json.loads(get_object(manifest["object"]))["files"]
                if name not in in_object:
                    raise Stale("%s is not in the runtime object" % name)
                content = in_object[name].encode("utf-8")
        if hashlib.sha256(content).hexdigest() != entry["sha256"]:
            raise Stale("%s does not match the manifest" % name)
        files[name] = (rule, content)
    # Only what the stack published as a whole is parsed: a file of a sync that races a
    # `pulumi up` is stale, not refused.
    for name, (rule, content) in sorted(files.items()):
        problem = content_problem(rule["grammar"], content)
        if problem:
            raise Unacceptable("%s line %d %s" % (name, problem[0], problem[1]))
    return files


def current(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def ids(user, group):
    return pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid


def up_to_date(path, content, mode, owner, chown):
    """Whether the installed file has this content, mode and (when managed) (user, group)."""
    if current(path) != content:
        return False
    status = os.stat(path)
    if status.st_mode & 0o7777 != int(mode, 8):
        return False
    return not chown or (status.st_uid, status.st_gid) == ids(*owner)


def install(path, content, mode, owner, chown):
    write_atomically(path, content, int(mode, 8), ids(*owner) if chown else None)


def write_atomically(path, content, mode, uid_gid):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    temporary = "%s.mailstack-new" % path
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, content)
        os.fsync(fd)
        if uid_gid is not None:
            os.fchown(fd, *uid_gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def run(command):
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", check=False)


def tail(result):
    """The last lines a command printed, on one line."""
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    return " | ".join(lines[-5:]) or "exit status %d" % result.returncode


# --- the runtime files -----------------------------------------------------------------------


def sync_runtime(args, values):
    from botocore.exceptions import BotoCoreError, ClientError

    if not args.runtime_table:
        say("not installing the runtime files: no table of runtime files (--runtime-table or MAILSTACK_RUNTIME_TABLE)", problem=True)
        return 1
    try:
        rules = load_table(args.runtime_table)
    except (OSError, ValueError) as problem:
        say("not installing the runtime files: cannot read the table of runtime files %s: %s" % (args.runtime_table, problem), problem=True)
        return 1
    try:
        files = assemble(values, lambda location: download(args, location), lambda name: current(os.path.join(args.dest, name)), rules)
    except Stale as problem:
        say("not installing: %s; will retry" % problem, problem=True)
        return EX_TEMPFAIL
    except Unacceptable as problem:
        say("not installing the runtime files: %s" % problem, problem=True)
        return 1
    except BotoCoreError as problem:
        say("cannot download the runtime files: %s; will retry" % problem, problem=True)
        return EX_TEMPFAIL
    except ClientError as problem:
        if missing(problem):
            say("the runtime files are not in S3 yet; will retry", problem=True)
            return EX_TEMPFAIL
        say("S3 refused the runtime files: %s" % problem, problem=True)
        return 1
    # A manifest or object this script cannot read.
    except (ValueError, KeyError, TypeError) as problem:
        say("not installing the runtime files: the manifest or the object is malformed: %r" % problem, problem=True)
        return 1

    reload = set()
    changed = []
    # Users removed or given another password hash: their open sessions outlive the change.
    outdated = set()
    for name, (rule, content) in sorted(files.items()):
        path = os.path.join(args.dest, name)
        owner = (rule["owner"], rule["group"])
        if up_to_date(path, content, rule["mode"], owner, not args.no_chown):
            continue
        if rule["grammar"] == "passwd-file":
            outdated |= outdated_users(current(path), content)
        elif rule["grammar"] == "app-passwords":
            outdated |= outdated_app_password_users(current(path), content)
        install(path, content, rule["mode"], owner, not args.no_chown)
        changed.append(name)
        reload.update(rule["reload"])

    # The state maps each installed file to the units that read it, so that a file the
    # stack no longer has is removed and its readers reloaded.
    state = current(args.state)
    previous = json.loads(state.decode("utf-8"))["files"] if state is not None else {}
    for name in sorted(set(previous) - set(files)):
        try:
            os.unlink(os.path.join(args.dest, name))
        except FileNotFoundError:
            pass
        changed.append("-" + name)
        reload.update(previous[name])
    installed = {name: rule["reload"] for name, (rule, _) in files.items()}
    if installed != previous:
        os.makedirs(os.path.dirname(args.state), mode=0o755, exist_ok=True)
        with open(args.state + ".new", "w", encoding="utf-8") as handle:
            json.dump({"files": installed}, handle, sort_keys=True)
        os.replace(args.state + ".new", args.state)

    if changed:
        say("updated %s" % ", ".join(changed))
    if reload and not args.no_reload:
        for unit in sorted(reload):
            say("reloading %s" % unit)
            subprocess.run(args.reload_command.split() + [unit], check=False)
    # After Dovecot's reload, which empties its authentication cache. At boot (--no-reload)
    # Dovecot is not running yet: there is no session to end.
    if outdated and not args.no_reload:
        end_sessions(args, sorted(outdated))
    return 0


def passwd_hashes(content):
    """Each user of a passwd-file with its password hash (the first line of a user counts, as
    for Dovecot). Read leniently: the installed file may have been edited by hand."""
    users = {}
    for line in (content or b"").decode("utf-8", "replace").split("\n"):
        fields = line.split(":")
        if len(fields) > 1:
            users.setdefault(fields[0], fields[1])
    return users


def outdated_users(old, new):
    """The users of the old passwd-file that the new one drops or gives another hash; only names
    that are addresses, so that none reads as doveadm's option or user mask (`-a`, `*`)."""
    before, after = passwd_hashes(old), passwd_hashes(new)
    return {user for user, hashed in before.items() if after.get(user) != hashed and address(user)}


def outdated_app_password_users(old, new):
    """The mailboxes of the old app-passwords file that lose or change an app password (its
    sessions cannot be told apart from the others'), or whose own password the new one
    refuses. Adding an app password ends nothing."""
    before, after = passwd_hashes(old), passwd_hashes(new)
    users = {key for key, hashed in before.items() if after.get(key) != hashed}
    users |= {key for key in after if key.endswith("/app-passwords-only") and key not in before}
    return {user for user in (key.split("/", 1)[0] for key in users) if address(user)}


def end_sessions(args, users):
    """Disconnects the IMAP and POP3 sessions of users removed or given another password: logged
    in before the change, they would otherwise go on reading and sending as if nothing changed.
    A failure is told, not fatal: the files are installed, and a stopped Dovecot has no session."""
    say("ending the sessions of %s" % ", ".join(users))
    for user in users:
        try:
            result = run(args.kick_command.split() + [user])
        except OSError as problem:
            say("cannot end the sessions of %s: %s" % (user, problem), problem=True)
            return
        # 68 (EX_NOHOST): doveadm found no session of the user.
        if result.returncode not in (0, 68):
            say("cannot end the sessions of %s: %s; Dovecot may be stopped, not trying the others" % (user, tail(result)), problem=True)
            return


# --- the host bundle -------------------------------------------------------------------------


@contextlib.contextmanager
def locked(state_path):
    # A rollback by hand may start while the timer's run is switching files.
    os.makedirs(os.path.dirname(state_path), mode=0o755, exist_ok=True)
    with open(state_path + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def load_state(path):
    data = current(path)
    if data is None:
        return {"current": None, "previous": None, "refused": {}, "reported": None}
    return json.loads(data)


def save_state(path, state):
    write_atomically(path, json.dumps(state, indent=1, sort_keys=True).encode("utf-8"), 0o644, None)


def bundle_path(args, sha):
    return os.path.join(args.bundles, "%s.json" % sha)


def on_disk(args, path):
    return os.path.join(args.root, path.lstrip("/"))


def owner(entry):
    return tuple(entry["owner"].split(":"))


def read_pointer(value):
    pointer = json.loads(value)
    if not isinstance(pointer, dict):
        raise ValueError("not a JSON object")
    for field in ("bucket", "key", "sha256", "endpoint"):
        if not isinstance(pointer.get(field), str):
            raise ValueError("no %s" % field)
    # It names a file in the bundles directory.
    if not SHA256.fullmatch(pointer["sha256"]):
        raise ValueError("sha256 %r is not a SHA-256" % pointer["sha256"])
    return pointer


def missing(problem):
    """Whether S3 answered that the object is not there (yet: a `pulumi up` is writing it)."""
    return problem.response.get("Error", {}).get("Code") == "NoSuchKey"


def download(args, location):
    """An object the stack named by bucket, key and endpoint."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        region_name=args.region,
        endpoint_url=args.s3_endpoint_url or location["endpoint"],
        # A stand-in on 127.0.0.1 has no host name to put the bucket in.
        config=Config(s3={"addressing_style": "path" if args.s3_endpoint_url else "virtual"}, retries=RETRIES),
    )
    return client.get_object(Bucket=location["bucket"], Key=location["key"])["Body"].read()


def bundle_problem(doc, chown):
    """What makes a document no bundle this script can install, if anything."""
    if not isinstance(doc, dict) or doc.get("version") != 1:
        return "version %r, not 1" % (doc.get("version") if isinstance(doc, dict) else None)
    checks, files = doc.get("checks"), doc.get("files")
    if not isinstance(checks, dict) or not all(isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv) for argv in checks.values()):
        return "checks must map names to commands"
    if not isinstance(files, list) or not all(isinstance(entry, dict) for entry in files):
        return "files must be a list of objects"
    paths = set()
    for entry in files:
        path = entry.get("path")
        if not isinstance(path, str) or not BUNDLE_PATH.fullmatch(path) or {".", ".."} & set(path.split("/")):
            return "path %r is not an absolute, normalised path below a top-level directory" % (path,)
        if path in paths:
            return "%s is listed twice" % path
        paths.add(path)
        if not isinstance(entry.get("content"), str):
            return "%s has no content" % path
        if not isinstance(entry.get("mode"), str) or not MODE.fullmatch(entry["mode"]):
            return "%s: mode %r is not like 0644" % (path, entry.get("mode"))
        if not isinstance(entry.get("owner"), str) or not OWNER.fullmatch(entry["owner"]):
            return "%s: owner %r is not user:group" % (path, entry.get("owner"))
        if chown:
            try:
                ids(*owner(entry))
            except KeyError:
                return "%s: owner %s does not exist on this host" % (path, entry["owner"])
        if not isinstance(entry.get("reload"), list) or not all(isinstance(unit, str) for unit in entry["reload"]):
            return "%s: reload must list units" % path
        if entry.get("check") is not None and entry["check"] not in checks:
            return "%s: no check named %r" % (path, entry["check"])
    return None


def parse_bundle(data, chown):
    try:
        doc = json.loads(data)
    except ValueError as problem:
        raise Refused("invalid bundle: not JSON: %s" % problem)
    problem = bundle_problem(doc, chown)
    if problem:
        raise Refused("invalid bundle: %s" % problem)
    return doc


def running_bundle(args, state):
    """The document of the running bundle, whose files a new one may drop."""
    data = current(bundle_path(args, state["current"])) if state["current"] else None
    return json.loads(data) if data is not None else {"files": []}


def differences(args, old, new):
    """The new bundle's files not on disk as it says, and the old one's files it drops."""
    changed = [
        entry
        for entry in new["files"]
        if not up_to_date(on_disk(args, entry["path"]), entry["content"].encode("utf-8"), entry["mode"], owner(entry), not args.no_chown)
    ]
    kept = {entry["path"] for entry in new["files"]}
    removed = [entry for entry in old["files"] if entry["path"] not in kept and os.path.lexists(on_disk(args, entry["path"]))]
    return changed, removed


def stage(args, directory, entry):
    # Overlayfs shows a directory with the mode and owner of its topmost layer: each staged
    # directory takes the live one's, so that checkers see the permissions they will see after
    # the switch.
    parts = entry["path"].split("/")[1:-1]
    for depth in range(1, len(parts) + 1):
        relative = "/".join(parts[:depth])
        staged = os.path.join(directory, relative)
        if os.path.isdir(staged):
            continue
        os.mkdir(staged, 0o755)
        try:
            live = os.stat(on_disk(args, relative))
        except FileNotFoundError:
            continue
        os.chmod(staged, live.st_mode & 0o7777)
        if not args.no_chown:
            os.chown(staged, live.st_uid, live.st_gid)
    install(os.path.join(directory, entry["path"].lstrip("/")), entry["content"].encode("utf-8"), entry["mode"], owner(entry), not args.no_chown)


def check(args, checks, changed):
    """Runs each checker of the changed files once, seeing them where they will be installed."""
    names = sorted({entry["check"] for entry in changed if entry.get("check")})
    if not names:
        return
    with tempfile.TemporaryDirectory(prefix="mailstack-check-") as directory:
        for entry in changed:
            stage(args, directory, entry)
        # Two lower layers and no upper one: a read-only overlay, gone with the checker's mount
        # namespace, through which nothing reaches the live files.
        mounts = []
        for top in sorted({entry["path"].split("/")[1] for entry in changed}):
            live = on_disk(args, top)
            option = "lowerdir=%s:%s" % (os.path.join(directory, top), live)
            mounts.append("mount -t overlay mailstack-check -o %s %s || exit %d" % (shlex.quote(option), shlex.quote(live), CANNOT_CHECK))
        script = "; ".join(mounts + ['exec "$@"'])
        for name in names:
            result = run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-ec", script, "sh"] + checks[name])
            if result.returncode == CANNOT_CHECK:
                raise CannotCheck(tail(result))
            if result.returncode != 0:
                raise Refused("%s check failed: %s" % (name, tail(result)))


def snapshot(args, entries):
    """Each file as it is on disk (None: absent), to put back if the new ones fail."""
    saved = {}
    for entry in entries:
        path = on_disk(args, entry["path"])
        content = current(path)
        saved[path] = None if content is None else (content, os.stat(path))
    return saved


def restore(args, saved):
    for path, was in saved.items():
        if was is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        else:
            content, status = was
            write_atomically(path, content, status.st_mode & 0o7777, None if args.no_chown else (status.st_uid, status.st_gid))


def timer_unit(path):
    """Whether a bundle path is a systemd timer of mailstack's own."""
    return path.startswith("/etc/systemd/system/") and path.endswith(".timer") and path.count("/") == 4


def activate(args, changed, removed):
    """Has the running host take up the files as they are now on disk; what went wrong."""
    if args.no_reload:
        return []
    systemctl = args.systemctl.split()
    problems = []

    def succeeds(command, label):
        result = run(command)
        if result.returncode != 0:
            problems.append("%s failed: %s" % (label, tail(result)))
        return result.returncode == 0

    touched = changed + removed
    # A timer only some configurations have (sesInbound's importer) comes and goes with the
    # bundle: one the bundle dropped is stopped and its enablement link removed (disable needs
    # the unit file, which is gone), so that nothing restarts it, now or at the next boot.
    dropped = sorted(os.path.basename(entry["path"]) for entry in removed if timer_unit(entry["path"]))
    for unit in dropped:
        say("stop %s" % unit)
        run(systemctl + ["stop", unit])
        with contextlib.suppress(FileNotFoundError):
            os.unlink(on_disk(args, "/etc/systemd/system/timers.target.wants/%s" % unit))
    if any(entry["path"].startswith("/etc/systemd/") for entry in touched):
        succeeds(systemctl + ["daemon-reload"], "daemon-reload")
    # A timer the bundle brings is enabled as the bootstrap enables the first ones: it runs
    # after a reboot too. Enabling one that is enabled changes nothing.
    for unit in sorted(os.path.basename(entry["path"]) for entry in changed if timer_unit(entry["path"])):
        say("enable %s" % unit)
        succeeds(systemctl + ["enable", unit], "enable %s" % unit)
    # Dovecot cannot compile the global scripts itself, in a directory only root may write.
    sieve = os.environ.get("MAILSTACK_SIEVE")
    if sieve and any(entry["path"].startswith(sieve.rstrip("/") + "/") for entry in changed):
        succeeds(["sievec", on_disk(args, sieve)], "sievec %s" % sieve)
    # A copy, as the bootstrap makes it, in place of the link to systemd-resolved's stub.
    resolv = os.environ.get("MAILSTACK_RESOLV_CONF")
    if resolv and any(entry["path"] == resolv for entry in changed):
        content = current(on_disk(args, resolv))
        # None after a rollback to a host that did not have it yet.
        if content is not None:
            write_atomically(on_disk(args, "/etc/resolv.conf"), content, 0o644, None)
    # systemd takes a unit's own settings (a drop-in's) only when it starts the unit.
    restart = {unit for entry in touched if entry["path"].startswith("/etc/systemd/") for unit in entry["reload"]}
    waiting = []
    for unit in sorted({unit for entry in touched for unit in entry["reload"]} - set(dropped)):
        verb = "restart" if unit.endswith(".timer") or unit in restart else "reload-or-restart"
        say("%s %s" % (verb, unit))
        if succeeds(systemctl + [verb, unit], "%s %s" % (unit, verb)):
            waiting.append(unit)
    # A daemon can accept a reload and die over the configuration a moment later, or take a
    # moment to come back from a restart: each must be active once the settle time is over.
    if waiting:
        time.sleep(args.settle_seconds)
    inactive = [unit for unit in waiting if run(systemctl + ["is-active", "--quiet", unit]).returncode != 0]
    problems.extend("%s not active after %g s" % (unit, args.settle_seconds) for unit in inactive)
    return problems


def commit(args, state, sha, data):
    """Records a bundle as running, keeping its document and the one before it."""
    if state["current"] != sha:
        state["previous"], state["current"] = state["current"], sha
    state["refused"].pop(sha, None)
    write_atomically(bundle_path(args, sha), data, 0o644, None)
    keep = {"%s.json" % kept for kept in (state["current"], state["previous"]) if kept}
    for name in os.listdir(args.bundles):
        if name not in keep:
            os.unlink(os.path.join(args.bundles, name))
    save_state(args.bundle_state, state)


def apply(args, state, sha, data):
    """Puts a bundle in place of the running one, or raises Refused with nothing changed."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha:
        raise Refused("hash mismatch: the object hashes to %s, the pointer says %s" % (digest, sha))
    new = parse_bundle(data, not args.no_chown)
    changed, removed = differences(args, running_bundle(args, state), new)
    check(args, new["checks"], changed)
    saved = snapshot(args, changed + removed)
    for entry in changed:
        install(on_disk(args, entry["path"]), entry["content"].encode("utf-8"), entry["mode"], owner(entry), not args.no_chown)
    for entry in removed:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(on_disk(args, entry["path"]))
    problems = activate(args, changed, removed)
    if problems:
        restore(args, saved)
        for problem in activate(args, changed, removed):
            say("after restoring the files: %s" % problem, problem=True)
        raise Refused("rolled back: %s" % "; ".join(problems))
    commit(args, state, sha, data)
    done = ["updated " + entry["path"] for entry in changed] + ["removed " + entry["path"] for entry in removed]
    say("host bundle %s applied: %s" % (sha, ", ".join(done) or "no file changed"))


def attempt(args, state, sha, data):
    """Applies a bundle document and records a refusal; the exit status."""
    try:
        apply(args, state, sha, data)
        return 0
    except Refused as refusal:
        state["refused"][sha] = str(refusal)
        save_state(args.bundle_state, state)
        say("host bundle %s not installed: %s" % (sha, refusal), problem=True)
    except CannotCheck as problem:
        say("cannot check host bundle %s on this host: %s" % (sha, problem), problem=True)
    return 1


def status_of(state, attempted):
    if attempted == state["current"]:
        result, reason = "applied", None
    elif attempted in state["refused"]:
        reason = state["refused"][attempted]
        result = "rolled-back" if reason.startswith("rolled back") else "refused"
    else:
        return None
    return {"running": state["current"], "attempted": attempted, "result": result, "reason": reason}


def report(args, ssm, state, attempted):
    from botocore.exceptions import BotoCoreError, ClientError

    status = status_of(state, attempted)
    if status is None or status == state["reported"]:
        return
    at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        ssm.put_parameter(Name="%s/%s" % (args.prefix, STATUS), Type="String", Overwrite=True, Value=json.dumps(dict(status, at=at)))
    except (BotoCoreError, ClientError) as problem:
        say("cannot report the host bundle's status to SSM: %s; will retry" % problem, problem=True)
        return
    state["reported"] = status
    save_state(args.bundle_state, state)


def sync_bundle(args, ssm, value):
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        pointer = read_pointer(value)
    except ValueError as problem:
        say("the %s parameter is not a bundle pointer: %s" % (POINTER, problem), problem=True)
        return 1
    sha = pointer["sha256"]
    with locked(args.bundle_state):
        state = load_state(args.bundle_state)
        status = 0
        if sha != state["current"] and sha not in state["refused"]:
            try:
                data = download(args, pointer)
            except BotoCoreError as problem:
                say("cannot download host bundle %s: %s; will retry" % (sha, problem), problem=True)
                return EX_TEMPFAIL
            except ClientError as problem:
                # The pointer can be read before the object it names, while a `pulumi up` runs.
                if missing(problem):
                    say("host bundle %s is not in s3://%s/%s yet; will retry" % (sha, pointer["bucket"], pointer["key"]), problem=True)
                    return EX_TEMPFAIL
                say("S3 refused host bundle %s: %s" % (sha, problem), problem=True)
                return 1
            status = attempt(args, state, sha, data)
        report(args, ssm, state, sha)
    return status


def install_bundle(args):
    with open(args.install_bundle, "rb") as handle:
        data = handle.read()
    sha = hashlib.sha256(data).hexdigest()
    with locked(args.bundle_state):
        try:
            doc = parse_bundle(data, not args.no_chown)
        except Refused as refusal:
            say("not installing %s: %s" % (args.install_bundle, refusal), problem=True)
            return 1
        for entry in doc["files"]:
            install(on_disk(args, entry["path"]), entry["content"].encode("utf-8"), entry["mode"], owner(entry), not args.no_chown)
        state = load_state(args.bundle_state)
        commit(args, state, sha, data)
    say("host bundle %s installed: %d files" % (sha, len(doc["files"])))
    return 0


def rollback(args):
    with locked(args.bundle_state):
        state = load_state(args.bundle_state)
        back, leaving = state["previous"], state["current"]
        data = current(bundle_path(args, back)) if back else None
        if data is None:
            say("no previous host bundle to return to", problem=True)
            return 1
        status = attempt(args, state, back, data)
        if status == 0:
            # Until the stack publishes another bundle, the timer keeps this one.
            state["refused"][leaving] = "rolled back by hand"
            save_state(args.bundle_state, state)
        return status


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default=os.environ.get("MAILSTACK_SSM_PATH"), help="SSM path of this stack")
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION"))
    parser.add_argument("--endpoint-url", default=None, help="SSM endpoint (tests)")
    parser.add_argument("--dest", default=os.environ.get("MAILSTACK_RUNTIME"), help="runtime directory (MAILSTACK_RUNTIME)")
    parser.add_argument("--state", default=os.environ.get("MAILSTACK_SYNC_STATE"), help="state file (MAILSTACK_SYNC_STATE)")
    parser.add_argument("--runtime-table", default=os.environ.get("MAILSTACK_RUNTIME_TABLE"), help="the host bundle's table of runtime files (MAILSTACK_RUNTIME_TABLE)")
    parser.add_argument("--bundles", default=os.environ.get("MAILSTACK_BUNDLES"), help="directory of the running and previous bundle documents (MAILSTACK_BUNDLES)")
    parser.add_argument("--bundle-state", default=os.environ.get("MAILSTACK_BUNDLE_STATE"), help="host bundle state file (MAILSTACK_BUNDLE_STATE)")
    parser.add_argument("--root", default="/", help="directory the bundle's paths are below (tests)")
    parser.add_argument("--s3-endpoint-url", default=None, help="S3 endpoint, path-style, instead of the pointer's (tests)")
    parser.add_argument("--no-chown", action="store_true", help="leave ownership alone (tests without the daemons' users)")
    parser.add_argument("--reload-command", default="systemctl reload-or-restart", help="run with each unit to reload")
    parser.add_argument("--kick-command", default="doveadm kick", help="run with each user whose sessions to end (removed, or another password)")
    parser.add_argument("--systemctl", default="systemctl", help="systemctl command for the host bundle's units (tests)")
    parser.add_argument("--settle-seconds", type=float, default=10, help="how long the reloaded units have to be active")
    parser.add_argument("--no-reload", action="store_true", help="install only; used at boot before services start")
    parser.add_argument("--handed-over", action="store_true", help="the run an older mailstack-sync handed to this one (once is enough)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--install-bundle", metavar="FILE", help="install every file of this bundle document, unchecked, and stop (first boot)")
    action.add_argument("--rollback", action="store_true", help="return to the previous host bundle, and refuse the current one")
    args = parser.parse_args()

    def require(*options):
        for option, variable in options:
            if not getattr(args, option.replace("-", "_")):
                parser.error("--%s or %s is required" % (option, variable))

    bundle_options = (("bundles", "MAILSTACK_BUNDLES"), ("bundle-state", "MAILSTACK_BUNDLE_STATE"))
    if args.install_bundle or args.rollback:
        require(*bundle_options)
        return install_bundle(args) if args.install_bundle else rollback(args)
    require(("prefix", "MAILSTACK_SSM_PATH"), ("dest", "MAILSTACK_RUNTIME"), ("state", "MAILSTACK_SYNC_STATE"))
    args.prefix = args.prefix.rstrip("/")

    from botocore.exceptions import BotoCoreError, ClientError

    ssm = ssm_client(args.region, args.endpoint_url)
    try:
        values = fetch(ssm, args.prefix)
    # No credentials yet, SSM unreachable: usual at first boot, and retried.
    except BotoCoreError as problem:
        say("cannot read %s from SSM: %s; will retry" % (args.prefix, problem), problem=True)
        return EX_TEMPFAIL
    # SSM answered no (access denied, throttled for good): a fault to see in systemctl --failed.
    except ClientError as problem:
        say("SSM refused reading %s: %s" % (args.prefix, problem), problem=True)
        return 1

    statuses = []
    if POINTER in values:
        require(*bundle_options)
        program = os.path.realpath(__file__)
        before = current(program)
        statuses.append(sync_bundle(args, ssm, values[POINTER]))
        # A bundle that brought another mailstack-sync brought runtime files it knows (new
        # grammars, new files main.cf already names): they are its to install, not this one's.
        if current(program) != before and not args.handed_over:
            say("the host bundle changed %s: running the new one" % program)
            sys.stdout.flush()
            os.execv(sys.executable, [sys.executable, program] + sys.argv[1:] + ["--handed-over"])
    statuses.append(sync_runtime(args, values))
    # A fault outranks a retry.
    return 1 if 1 in statuses else max(statuses)


if __name__ == "__main__":
    sys.exit(main())
