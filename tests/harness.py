"""Shared pieces of the end-to-end tests.

Each test starts the mock provider on 127.0.0.1, writes a config that points
outboxd at it, inserts rows with plain SQL as an ERP would, runs outboxd and
checks the rows, the attempt history and the requests the mock received.
CTest passes the paths of the built programs in OUTBOXD and MOCK_PROVIDER.
"""

import atexit
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

OUTBOXD = os.environ.get("OUTBOXD", "build/outboxd")
MOCK_PROVIDER = os.environ.get("MOCK_PROVIDER", "build/tests/mock_provider")
API_KEY = "SG.test-key-never-logged-1234"

failures = 0


def check(condition, message):
    """Records a failed expectation without stopping the test."""
    global failures
    if not condition:
        failures += 1
        print(f"FAIL: {message}", file=sys.stderr)


def check_equal(got, want, what):
    check(got == want, f"{what}: got {got!r}, want {want!r}")


def run_guarded(test):
    """Runs test, counting an exception (a timeout, say) as a failure, so
    a test run on a thread cannot fail unseen."""
    global failures
    try:
        test()
    except Exception as error:  # noqa: BLE001 - any error fails the test
        failures += 1
        print(f"FAIL: {test.__name__} raised {error!r}", file=sys.stderr)


def finish():
    if failures:
        print(f"{failures} check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("ok")


class Mock:
    """The mock provider process and its request log."""

    def __init__(self, workdir, script="", default="202", extra=(),
                 responses=None):
        """responses maps a name to the text of a canned response, which the
        steps "@name" of script and default send (tests/mock/README.md)."""
        self.log_path = os.path.join(workdir, "mock.jsonl")
        port_file = os.path.join(workdir, "mock.port")
        args = [MOCK_PROVIDER, "--port", "0", "--port-file", port_file,
                "--log", self.log_path, "--log-bodies", "--default", default]
        if script:
            args += ["--script", script]
        if responses:
            responses_dir = os.path.join(workdir, "answers")
            os.makedirs(responses_dir, exist_ok=True)
            for name, text in responses.items():
                with open(os.path.join(responses_dir, name), "w") as f:
                    f.write(text)
            args += ["--responses", responses_dir]
        args += list(extra)
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        # A test that fails with an exception must not leave the mock
        # running.
        atexit.register(self.process.kill)
        deadline = time.time() + 10
        while not os.path.exists(port_file):
            if time.time() > deadline or self.process.poll() is not None:
                raise RuntimeError("mock provider did not start")
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read().strip())
        self.url = f"http://127.0.0.1:{self.port}"

    def requests(self):
        """Returns every request logged so far, flushing the log first."""
        self.process.send_signal(signal.SIGUSR1)
        time.sleep(0.2)
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


class Outbox:
    """A database, a config, and outboxd runs against them."""

    def __init__(self, workdir, providers, **settings):
        self.workdir = workdir
        self.database = os.path.join(workdir, "outbox.db")
        self.config_path = os.path.join(workdir, "outboxd.json")
        self.logs = []
        config = {"database": self.database, "providers": providers,
                  "log_level": "debug"}
        config.update(settings)
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=2)
        self.migrate()

    def migrate(self):
        result = subprocess.run([OUTBOXD, "--config", self.config_path,
                                 "--migrate"], capture_output=True,
                                text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"outboxd --migrate failed: {result.stderr}")

    def connect(self):
        db = sqlite3.connect(self.database, timeout=5)
        db.row_factory = sqlite3.Row
        return db

    def insert(self, **columns):
        """Inserts one outbox row and returns its id."""
        db = self.connect()
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        cursor = db.execute(f"INSERT INTO outbox ({names}) VALUES ({marks})",
                            list(columns.values()))
        db.commit()
        row_id = cursor.lastrowid
        db.close()
        return row_id

    def attach(self, outbox_id, filename, content_type, content,
               content_id=None):
        db = self.connect()
        db.execute("INSERT INTO outbox_attachment (outbox_id, filename, "
                   "content_type, content, content_id) VALUES (?,?,?,?,?)",
                   (outbox_id, filename, content_type, content, content_id))
        db.commit()
        db.close()

    def row(self, row_id):
        db = self.connect()
        row = db.execute("SELECT * FROM outbox WHERE id = ?",
                         (row_id,)).fetchone()
        db.close()
        return dict(row)

    def query(self, sql, *args):
        db = self.connect()
        rows = [dict(r) for r in db.execute(sql, args).fetchall()]
        db.close()
        return rows

    def attempts(self, row_id):
        return self.query("SELECT * FROM delivery_attempt WHERE outbox_id = ?"
                          " ORDER BY attempt", row_id)

    def start(self, *extra, env=None):
        """Starts outboxd in the background; returns the process."""
        full_env = dict(os.environ)
        full_env.update(env or {})
        log = open(os.path.join(self.workdir, f"outboxd-{len(self.logs)}.log"),
                   "w")
        self.logs.append(log.name)
        return subprocess.Popen([OUTBOXD, "--config", self.config_path]
                                + list(extra), stderr=log, env=full_env)

    def drain(self, timeout=60, env=None):
        """Runs outboxd --drain to the end; returns its exit code."""
        process = self.start("--drain", env=env)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"outboxd --drain did not finish within "
                                 f"{timeout} s; log: {self.log_text()}")

    def log_text(self):
        text = ""
        for name in self.logs:
            with open(name) as f:
                text += f.read()
        return text


def wait_for(predicate, timeout, description):
    """Polls predicate every 50 ms; returns its first true value, or
    raises AssertionError with description after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {description}")


def sendgrid(url, name="sendgrid", **extra):
    provider = {"name": name, "type": "sendgrid", "base_url": url,
                "api_key": API_KEY, "timeout_seconds": 5,
                "connect_timeout_seconds": 2}
    provider.update(extra)
    return provider


def workdir():
    return tempfile.mkdtemp(prefix="outbox-e2e-")
