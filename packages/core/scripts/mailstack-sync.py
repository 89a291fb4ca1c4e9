#!/usr/bin/python3
"""Install the runtime files (users, maps, DKIM keys) this host's stack keeps in SSM.

The stack writes each file as one or more SecureString parameters and a manifest with each
file's SHA-256. Every file is assembled and checked against the manifest before any is
written, so a sync that races a `pulumi up` installs nothing and retries later (exit 75).
Changed files are replaced atomically, and only the units that read them are reloaded.

Settings come from the environment, as /etc/default/mailstack sets it: the unit's
EnvironmentFile, or the bootstrap, which exports it. Arguments override them (tests).
"""

import argparse
import grp
import hashlib
import json
import os
import pwd
import subprocess
import sys

EX_TEMPFAIL = 75


class Stale(Exception):
    """The parameters do not (yet) agree with the manifest."""


def fetch(prefix, region, endpoint):
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "ssm",
        region_name=region,
        endpoint_url=endpoint,
        config=Config(retries={"max_attempts": 8, "mode": "standard"}),
    )
    values = {}
    for page in client.get_paginator("get_parameters_by_path").paginate(
        Path=prefix, Recursive=True, WithDecryption=True
    ):
        for parameter in page["Parameters"]:
            values[parameter["Name"][len(prefix):].lstrip("/")] = parameter["Value"]
    return values


def assemble(values):
    if "manifest" not in values:
        raise Stale("no manifest parameter yet")
    manifest = json.loads(values["manifest"])
    if manifest.get("version") != 1:
        raise Stale("manifest version %r is newer than this script" % manifest.get("version"))
    files = {}
    for entry in manifest["files"]:
        name, count = entry["name"], entry["parts"]
        if name.startswith("/") or ".." in name.split("/"):
            raise ValueError("refusing unsafe file name %r" % name)
        body = []
        for index in range(count):
            value = values.get("files/%s/%d" % (name, index))
            if value is None:
                raise Stale("%s: part %d of %d is missing" % (name, index + 1, count))
            header, _, rest = value.partition("\n")
            if header != "# mailstack %s %d/%d" % (name, index + 1, count):
                raise Stale("%s: part %d carries header %r" % (name, index + 1, header))
            body.append(rest)
        content = "".join(body).encode("utf-8")
        if hashlib.sha256(content).hexdigest() != entry["sha256"]:
            raise Stale("%s does not match the manifest" % name)
        files[name] = (entry, content)
    return files


def current(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def up_to_date(path, entry, content, chown):
    """Whether the installed file has this content, mode and (when managed) owner."""
    if current(path) != content:
        return False
    status = os.stat(path)
    if status.st_mode & 0o7777 != int(entry["mode"], 8):
        return False
    if chown and (status.st_uid, status.st_gid) != (pwd.getpwnam(entry["owner"]).pw_uid, grp.getgrnam(entry["group"]).gr_gid):
        return False
    return True


def install(path, entry, content, chown):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    temporary = "%s.mailstack-new" % path
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, content)
        os.fsync(fd)
        if chown:
            os.fchown(fd, pwd.getpwnam(entry["owner"]).pw_uid, grp.getgrnam(entry["group"]).gr_gid)
        os.fchmod(fd, int(entry["mode"], 8))
    finally:
        os.close(fd)
    os.replace(temporary, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default=os.environ.get("MAILSTACK_SSM_PATH"), help="SSM path of this stack")
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION"))
    parser.add_argument("--endpoint-url", default=None, help="SSM endpoint (tests)")
    parser.add_argument("--dest", default=os.environ.get("MAILSTACK_RUNTIME"), help="runtime directory (MAILSTACK_RUNTIME)")
    parser.add_argument("--state", default=os.environ.get("MAILSTACK_SYNC_STATE"), help="state file (MAILSTACK_SYNC_STATE)")
    parser.add_argument("--no-chown", action="store_true", help="leave ownership alone (tests without the daemons' users)")
    parser.add_argument("--reload-command", default="systemctl reload-or-restart", help="run with each unit to reload")
    parser.add_argument("--no-reload", action="store_true", help="install only; used at boot before services start")
    args = parser.parse_args()
    for option, variable in (("prefix", "MAILSTACK_SSM_PATH"), ("dest", "MAILSTACK_RUNTIME"), ("state", "MAILSTACK_SYNC_STATE")):
        if not getattr(args, option):
            parser.error("--%s or %s is required" % (option, variable))

    from botocore.exceptions import BotoCoreError, ClientError

    try:
        files = assemble(fetch(args.prefix.rstrip("/"), args.region, args.endpoint_url))
    except Stale as problem:
        print("mailstack-sync: not installing: %s; will retry" % problem, file=sys.stderr)
        return EX_TEMPFAIL
    # No credentials yet, SSM unreachable: usual at first boot, and retried.
    except BotoCoreError as problem:
        print("mailstack-sync: cannot read %s from SSM: %s; will retry" % (args.prefix, problem), file=sys.stderr)
        return EX_TEMPFAIL
    # SSM answered no (access denied, throttled for good): a fault to see in systemctl --failed.
    except ClientError as problem:
        print("mailstack-sync: SSM refused reading %s: %s" % (args.prefix, problem), file=sys.stderr)
        return 1

    reload = set()
    changed = []
    for name, (entry, content) in sorted(files.items()):
        path = os.path.join(args.dest, name)
        if up_to_date(path, entry, content, not args.no_chown):
            continue
        install(path, entry, content, not args.no_chown)
        changed.append(name)
        reload.update(entry["reload"])

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
    installed = {name: entry["reload"] for name, (entry, _) in files.items()}
    if installed != previous:
        os.makedirs(os.path.dirname(args.state), mode=0o755, exist_ok=True)
        with open(args.state + ".new", "w", encoding="utf-8") as handle:
            json.dump({"files": installed}, handle, sort_keys=True)
        os.replace(args.state + ".new", args.state)

    if changed:
        print("mailstack-sync: updated %s" % ", ".join(changed))
    if reload and not args.no_reload:
        for unit in sorted(reload):
            print("mailstack-sync: reloading %s" % unit)
            subprocess.run(args.reload_command.split() + [unit], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
