#!/usr/bin/python3
"""Hand the mail SES kept in S3 while the host was away to Postfix, each message exactly once.

With sesInbound, SES is the mail domains' last MX: while this host is down or refuses, SES
accepts mail for the hosted addresses and stores each message as received in the bucket
MAILSTACK_SES_BUCKET, under MAILSTACK_SES_INBOUND_PREFIX<address>/<SES message id>. There is
one receipt rule per address, so the key names the recipient that the stored message has no
envelope for (a Bcc recipient too; a message to two addresses is stored once under each).

A timer runs this every five minutes. Each object, oldest first, is downloaded and handed to
Postfix's import service on 127.0.0.1:MAILSTACK_SES_IMPORT_PORT, which applies port 25's
restrictions, rspamd and the size limit: MAIL FROM is the Return-Path SES prepended (<> if
there is none), RCPT TO the key's address, and XCLIENT makes the session that of the client
SES's own Received header names (HELO, reverse name and address), so that Postfix's
restrictions, rspamd and the Received header judge the server SES saw, not this script.
Postfix's reply decides:

  2xx  delivered. The key is recorded (MAILSTACK_SES_IMPORT_STATE, synced to disk) before the
       object is deleted, and a recorded key is never handed over again, only deleted: a
       crash or a failed delete between the two never delivers a message twice.
  5xx  refused (spam, an unknown or full mailbox, too big). Never bounced, since the sender
       may be forged: the object moves to MAILSTACK_SES_REJECTED_PREFIX<address>/<id>, where
       the bucket's lifecycle expires it, and the reply is logged.
  4xx  to this message (greylisting, a sender domain that does not resolve yet): it waits
       for the next run. One still refused so after Postfix's queue lifetime is refused.

Postfix unreachable, a 421, or a temporary refusal of the sender alone (before any recipient
is named) means Postfix, rspamd or Dovecot is not ready, and S3 unreachable is no better: the
run stops there and leaves the rest. Each decision is one line on stdout with the object's
key and Postfix's reply.

Exit status: 0; 75 when a message waits for a later run after a temporary refusal; 1 when
Postfix or S3 could not be used, or an object could not be handled (the unit's OnFailure
tells the postmaster).

Settings come from the environment, as /etc/default/mailstack sets it (the unit's
EnvironmentFile). Arguments override the S3 endpoint (tests).
"""

import argparse
import datetime
import email.parser
import email.policy
import fcntl
import ipaddress
import json
import os
import re
import smtplib
import socket
import sys

EX_TEMPFAIL = 75
RETRIES = {"max_attempts": 4, "mode": "standard"}
# How long a sender's server would typically have retried (Postfix's default maximal_queue_lifetime).
QUEUE_LIFETIME = datetime.timedelta(days=5)
SMTP_TIMEOUT = 300
# Written by SES under a rule's prefix when the rule is created; no one's mail.
SETUP_NOTIFICATION = "AMAZON_SES_SETUP_NOTIFICATION"
# SES's S3 action with a KMS key encrypts on the client side (the S3 encryption client's
# envelope in the object's metadata); such an object is ciphertext to GetObject.
CLIENT_SIDE_ENCRYPTION = ("x-amz-key-v2", "x-amz-key")
# An envelope address as it may appear in a command: printable ASCII, no spaces or brackets.
ENVELOPE_ADDRESS = re.compile(r"[!-;=?-~]{1,254}")
RECIPIENT = re.compile(r"[!-;=?-~]{1,64}@[A-Za-z0-9.-]{1,253}")
HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")
# SES's Received header: "from HELO (RDNS [ADDRESS]) by inbound-smtp.<region>.amazonaws.com ...".
RECEIVED = re.compile(r"from\s+(?P<helo>\S+)\s+\((?:(?P<name>[^\s\[\]()]+)\s+)?\[(?:IPv6:)?(?P<addr>[0-9A-Fa-f:.]+)\]\)\s+by\s+(?P<by>\S+)", re.IGNORECASE)


def say(message, problem=False):
    print("mailstack-ses-import: %s" % message, file=sys.stderr if problem else sys.stdout, flush=True)


class Unavailable(Exception):
    """Postfix's import service cannot take mail now: the run stops."""


class Unreadable(Exception):
    """An object this script cannot turn into a message: it stays, and the run fails."""


class State:
    """The keys handed to Postfix ("delivered") or refused by it ("rejected") whose objects are still in S3."""

    def __init__(self, path):
        self.path = path
        try:
            with open(path, encoding="utf-8") as handle:
                self.keys = json.load(handle).get("keys", {})
        except FileNotFoundError:
            self.keys = {}

    def get(self, key):
        return self.keys.get(key)

    def set(self, key, outcome):
        self.keys[key] = outcome
        self.save()

    def keep_only(self, keys):
        """Forgets the keys whose objects are gone, so the record stays as small as the bucket."""
        kept = {key: outcome for key, outcome in self.keys.items() if key in keys}
        if kept != self.keys:
            self.keys = kept
            self.save()

    def save(self):
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o755, exist_ok=True)
        new = self.path + ".new"
        with open(new, "w", encoding="utf-8") as handle:
            json.dump({"version": 1, "keys": self.keys}, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(new, self.path)
        # The rename itself must survive a crash too.
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def xtext(value):
    """RFC 3461's xtext, which XCLIENT's values are written in."""
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else "".join("+%02X" % b for b in c.encode("utf-8")) for c in value)


def unfold(value):
    return re.sub(r"\r?\n[ \t]+", " ", str(value)).strip()


def envelope(data, region):
    """(sender, client): the Return-Path SES prepended, and the client its Received header names, or None."""
    headers = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(data, headersonly=True)
    path = unfold(headers.get("Return-Path", ""))
    match = re.fullmatch(r"<([^<>]*)>", path)
    sender = match.group(1) if match else path
    if sender and not ENVELOPE_ADDRESS.fullmatch(sender):
        raise ValueError("its Return-Path %r is no address Postfix could be given" % path[:100])
    received = headers.get_all("Received") or []
    client = None
    match = RECEIVED.match(unfold(received[0])) if received else None
    if match and match.group("by").lower().rstrip(".") == "inbound-smtp.%s.amazonaws.com" % region.lower():
        try:
            address = str(ipaddress.ip_address(match.group("addr")))
        except ValueError:
            address = None
        if address:
            name, helo = match.group("name") or "", match.group("helo")
            client = {
                "NAME": name if HOSTNAME.fullmatch(name) and name.lower() != "unknown" else "[UNAVAILABLE]",
                "ADDR": address,
                "HELO": helo if re.fullmatch(r"[!-~]{1,255}", helo) else "[UNAVAILABLE]",
            }
    return sender, client


def text(reply):
    return (reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)).replace("\n", " / ")


def hand_over(args, sender, recipient, client, data):
    """Postfix's verdict on the message: (code, reply). Raises Unavailable when it cannot take mail now."""
    try:
        smtp = smtplib.SMTP("127.0.0.1", args.port, local_hostname=args.helo, timeout=SMTP_TIMEOUT)
    except smtplib.SMTPConnectError as problem:
        raise Unavailable("Postfix's import service greets with %d %s" % (problem.smtp_code, text(problem.smtp_error))) from None
    except OSError as problem:
        raise Unavailable("cannot connect to Postfix's import service on 127.0.0.1:%d: %s" % (args.port, problem)) from None
    try:
        return transaction(smtp, sender, recipient, client, data)
    except (smtplib.SMTPServerDisconnected, OSError) as problem:
        raise Unavailable("Postfix's import service dropped the connection: %s" % problem) from None
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def transaction(smtp, sender, recipient, client, data):
    code, reply = smtp.ehlo()
    if code != 250:
        raise Unavailable("EHLO: %d %s" % (code, text(reply)))
    # XCLIENT has Postfix take the session as the sender's server's: its restrictions, the
    # Received header and rspamd (which XFORWARD would not reach) judge that server, not this
    # host on loopback, which rspamd exempts from SPF, DMARC, greylisting and the blocklists.
    # Without it the import would filter less strictly than port 25: it must not run.
    offered = (smtp.esmtp_features.get("xclient") or "").upper().split()
    if not offered:
        raise Unavailable("Postfix's import service does not offer XCLIENT to this host")
    attributes = client or {"NAME": "[UNAVAILABLE]", "ADDR": "[UNAVAILABLE]"}
    attributes = dict(attributes, PROTO="ESMTP")
    code, reply = smtp.docmd("XCLIENT", " ".join("%s=%s" % (k, xtext(v)) for k, v in attributes.items() if k in offered))
    if code != 220:
        raise Unavailable("XCLIENT: %d %s" % (code, text(reply)))
    # A new session for the client it names, which greets as that client greeted SES.
    helo = attributes.get("HELO", "[UNAVAILABLE]")
    code, reply = smtp.ehlo(smtp.local_hostname if helo == "[UNAVAILABLE]" else helo)
    if code != 250:
        return code, text(reply)
    options = []
    if smtp.has_extn("size"):
        options.append("SIZE=%d" % len(data))
    if smtp.has_extn("8bitmime") and any(b > 127 for b in data):
        options.append("BODY=8BITMIME")
    code, reply = smtp.mail(sender, options)
    # Postfix judges the sender at RCPT (smtpd_delay_reject): a temporary refusal here is the service's.
    if code == 421 or 400 <= code < 500:
        raise Unavailable("MAIL FROM: %d %s" % (code, text(reply)))
    if code != 250:
        return code, text(reply)
    code, reply = smtp.rcpt(recipient)
    if code == 421:
        raise Unavailable("RCPT TO: %d %s" % (code, text(reply)))
    if code not in (250, 251):
        return code, text(reply)
    try:
        code, reply = smtp.data(data)
    except smtplib.SMTPDataError as problem:
        code, reply = problem.smtp_code, problem.smtp_error
    if code == 421:
        raise Unavailable("DATA: %d %s" % (code, text(reply)))
    return code, text(reply)


class Importer:
    def __init__(self, args, env, s3, state):
        self.args, self.s3, self.state = args, s3, state
        self.bucket = env["MAILSTACK_SES_BUCKET"]
        self.region = env["MAILSTACK_SES_REGION"]
        self.inbound = env["MAILSTACK_SES_INBOUND_PREFIX"]
        self.rejected = env["MAILSTACK_SES_REJECTED_PREFIX"]
        self.gone = set()

    def objects(self):
        """Every object below the inbound prefix, oldest first."""
        found = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.inbound):
            found.extend(page.get("Contents", []))
        return sorted(found, key=lambda o: (o["LastModified"], o["Key"]))

    def delete(self, key):
        self.s3.delete_object(Bucket=self.bucket, Key=key)
        self.gone.add(key)

    def move(self, key):
        """Copy to the rejected prefix, then delete: the copy is there before the original goes."""
        target = self.rejected + key[len(self.inbound):]
        self.s3.copy_object(Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": key})
        self.delete(key)
        return target

    def refuse(self, key, why):
        self.state.set(key, "rejected")
        say("%s: refused, not bounced: %s; moved to %s" % (key, why, self.move(key)))

    def handle(self, obj, now):
        """One object: 0 when it is dealt with, EX_TEMPFAIL when it waits for a later run."""
        key = obj["Key"]
        address, _, name = key[len(self.inbound):].partition("/")
        if name == SETUP_NOTIFICATION:
            self.delete(key)
            say("%s: SES's notice that the receipt rule can write here; deleted" % key)
            return 0
        done = self.state.get(key)
        if done == "delivered":
            self.delete(key)
            say("%s: delivered by an earlier run; deleted" % key)
            return 0
        if done == "rejected":
            say("%s: refused by an earlier run; moved to %s" % (key, self.move(key)))
            return 0
        if not RECIPIENT.fullmatch(address) or not name or "/" in name:
            self.refuse(key, "no key of a receipt rule (%s<address>/<id>)" % self.inbound)
            return 0
        try:
            answer = self.s3.get_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.NoSuchKey:
            # Another hand (the operator, a lifecycle rule) removed it since the listing.
            say("%s: gone before it was handled" % key)
            return 0
        if any(field in answer.get("Metadata", {}) for field in CLIENT_SIDE_ENCRYPTION):
            raise Unreadable("encrypted on the client side (the receipt rule's S3 action has a KMS key): this importer reads only objects that S3 decrypts (the bucket's default encryption); left in place")
        data = answer["Body"].read()
        try:
            sender, client = envelope(data, self.region)
        except ValueError as problem:
            self.refuse(key, str(problem))
            return 0
        code, reply = hand_over(self.args, sender, address, client, data)
        # As Postfix names a client in its log.
        via = "from %s[%s]" % (client["NAME"].replace("[UNAVAILABLE]", "unknown"), client["ADDR"]) if client else "with no client (no Received header of SES's)"
        if 200 <= code < 300:
            self.state.set(key, "delivered")
            self.delete(key)
            say("%s: delivered to %s %s: %d %s; deleted" % (key, address, via, code, reply))
            return 0
        if 400 <= code < 500 and now - obj["LastModified"] < QUEUE_LIFETIME:
            say("%s: deferred for %s %s: %d %s; left for the next run" % (key, address, via, code, reply))
            return EX_TEMPFAIL
        self.refuse(key, "%s %s: %d %s" % (address, via, code, reply))
        return 0


def client(region, endpoint):
    import boto3
    from botocore.config import Config

    # A stand-in on 127.0.0.1 has no host name to put the bucket in.
    return boto3.client("s3", region_name=region, endpoint_url=endpoint, config=Config(s3={"addressing_style": "path" if endpoint else "virtual"}, retries=RETRIES))


def main():
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--s3-endpoint-url", default=None, help="S3 endpoint, path-style (tests)")
    parser.add_argument("--state", default=env.get("MAILSTACK_SES_IMPORT_STATE"), help="record of the keys handed over (MAILSTACK_SES_IMPORT_STATE)")
    parser.add_argument("--port", type=int, default=int(env.get("MAILSTACK_SES_IMPORT_PORT") or 0), help="Postfix's import service on 127.0.0.1 (MAILSTACK_SES_IMPORT_PORT)")
    parser.add_argument("--helo", default=env.get("MAILSTACK_HOSTNAME") or socket.gethostname(), help="this host's name in EHLO")
    args = parser.parse_args()
    if not args.state or not args.port:
        parser.error("MAILSTACK_SES_IMPORT_STATE and MAILSTACK_SES_IMPORT_PORT are not set: is sesInbound on?")
    from botocore.exceptions import BotoCoreError, ClientError

    # One run at a time: two would hand the same object over twice.
    os.makedirs(os.path.dirname(args.state), mode=0o755, exist_ok=True)
    lock = open(args.state + ".lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say("another run is importing; leaving it to that one")
        return EX_TEMPFAIL
    importer = Importer(args, env, client(env["MAILSTACK_SES_REGION"], args.s3_endpoint_url), State(args.state))
    try:
        objects = importer.objects()
    except (BotoCoreError, ClientError) as problem:
        say("cannot list s3://%s/%s: %s" % (importer.bucket, importer.inbound, problem), problem=True)
        return 1
    listed = {o["Key"] for o in objects}
    importer.state.keep_only(listed)
    try:
        return import_all(importer, objects)
    finally:
        # Deleted objects are never listed again (S3 lists what it has written): their keys go.
        importer.state.keep_only(listed - importer.gone)


def import_all(importer, objects):
    from botocore.exceptions import BotoCoreError, ClientError

    now = datetime.datetime.now(datetime.timezone.utc)
    failed = waiting = False
    for obj in objects:
        try:
            waiting |= importer.handle(obj, now) == EX_TEMPFAIL
        except Unavailable as problem:
            say("%s: left, as is every message after it: %s" % (obj["Key"], problem), problem=True)
            return 1
        except BotoCoreError as problem:
            say("%s: left, as is every message after it: S3: %s" % (obj["Key"], problem), problem=True)
            return 1
        except ClientError as problem:
            say("%s: S3 refused: %s" % (obj["Key"], problem), problem=True)
            failed = True
        except Unreadable as problem:
            say("%s: %s" % (obj["Key"], problem), problem=True)
            failed = True
    return 1 if failed else EX_TEMPFAIL if waiting else 0


if __name__ == "__main__":
    sys.exit(main())
