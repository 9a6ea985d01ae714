"""A real SMTP server on 127.0.0.1 for the end-to-end tests: aiosmtpd with
STARTTLS and AUTH, replying to each transaction as a script sets.

Run it with /usr/bin/python3, where Debian's python3-aiosmtpd lives:

    smtp_peer.py --port-file F --log F --cert F --key F
                 [--username U --password P] [--token T]
                 [--script JSON] [--auth-reply TEXT]

--script is a JSON list with one object per transaction (one MAIL FROM),
in order; later transactions are accepted. An object may hold the reply
to give instead of accepting, under "mail", "rcpt" or "data",
"rcpt_silence": true to never reply to RCPT TO, and "data_silence":
true to never reply to the end of DATA. --auth-reply
refuses every AUTH with that reply. Every command the server acts on is
appended to the log as one JSON object per line.
"""

import argparse
import asyncio
import base64
import json
import os
import socket
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword


class Peer:
    """The handler: scripted replies and a log of what arrived."""

    def __init__(self, options):
        self.options = options
        self.script = json.loads(options.script or "[]")
        self.transaction = -1
        self.log = open(options.log, "a", buffering=1)

    def write(self, **event):
        self.log.write(json.dumps(event) + "\n")

    def step(self, key):
        if 0 <= self.transaction < len(self.script):
            return self.script[self.transaction].get(key)
        return None

    async def handle_AUTH(self, server, session, envelope, args):
        if self.options.auth_reply:
            self.write(event="auth", reply=self.options.auth_reply)
            return self.options.auth_reply
        return MISSING

    async def auth_XOAUTH2(self, server, args):
        if len(args) > 1:
            answer = base64.b64decode(args[1])
        else:
            answer = await server.challenge_auth("", encode_to_b64=False)
        fields = answer.split(b"\x01")
        user = fields[0].removeprefix(b"user=").decode()
        token = fields[1].removeprefix(b"auth=Bearer ").decode()
        ok = (user == self.options.username
              and token == self.options.token)
        self.write(event="auth", mechanism="XOAUTH2", user=user, ok=ok)
        return AuthResult(success=ok, handled=False,
                          auth_data=LoginPassword(user.encode(), b""))

    async def handle_MAIL(self, server, session, envelope, address,
                          options):
        self.transaction += 1
        reply = self.step("mail")
        self.write(event="mail", address=address, options=options,
                   tls=session.ssl is not None,
                   login=(getattr(session.auth_data, "login", None)
                          or b"").decode(),
                   reply=reply or "250")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        reply = self.step("rcpt")
        self.write(event="rcpt", address=address, reply=reply or "250")
        if self.step("rcpt_silence"):
            await asyncio.sleep(3600)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = self.step("data")
        self.write(event="data", mail_from=envelope.mail_from,
                   rcpt_tos=envelope.rcpt_tos,
                   content=base64.b64encode(envelope.original_content
                                            ).decode(),
                   reply=reply or "250")
        if self.step("data_silence"):
            await asyncio.sleep(3600)
        if reply:
            return reply
        return f"250 2.0.0 Ok: queued as Q{self.transaction + 1}"


def authenticate(options):
    def check(server, session, envelope, mechanism, data):
        ok = (data.login.decode() == options.username
              and data.password.decode() == options.password)
        return AuthResult(success=ok, handled=False, auth_data=data)
    return check


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    for name in ("--port-file", "--log", "--cert", "--key"):
        parser.add_argument(name, required=True)
    for name in ("--username", "--password", "--token", "--script",
                 "--auth-reply"):
        parser.add_argument(name)
    options = parser.parse_args()

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(options.cert, options.key)
    port = free_port()
    controller = Controller(
        Peer(options), hostname="127.0.0.1", port=port,
        server_hostname="relay.test", tls_context=context,
        require_starttls=True, auth_required=bool(options.username),
        auth_require_tls=True, authenticator=authenticate(options))
    controller.start()
    temporary = options.port_file + ".tmp"
    with open(temporary, "w") as f:
        f.write(f"{port}\n")
    os.rename(temporary, options.port_file)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
