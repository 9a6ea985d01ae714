"""End to end: a bad configuration stops outboxd before it starts, with one
line that names the problem and a non-zero exit code."""

import json
import os
import sqlite3
import subprocess

from harness import OUTBOXD, check, check_equal, finish, workdir


def run(directory, config, *extra, env=None):
    path = os.path.join(directory, "outboxd.json")
    if config is not None:
        with open(path, "w") as f:
            f.write(config if isinstance(config, str) else json.dumps(config))
    full_env = dict(os.environ)
    full_env.pop("SENDGRID_KEY_FOR_TEST", None)
    full_env.update(env or {})
    return subprocess.run([OUTBOXD, "--config", path, "--drain", *extra],
                          capture_output=True, text=True, timeout=30,
                          env=full_env)


def sendgrid(**extra):
    provider = {"name": "sg", "type": "sendgrid",
                "base_url": "http://127.0.0.1:9", "api_key": "SG.secret-1"}
    provider.update(extra)
    return provider


def test_refusals():
    directory = workdir()
    database = os.path.join(directory, "outbox.db")
    newer = os.path.join(directory, "newer.db")
    db = sqlite3.connect(newer)
    db.execute("PRAGMA user_version = 99")
    db.close()

    # (name, config, expected exit code, text the one error line contains)
    cases = [
        ("missing file", None, 2, "cannot read config file"),
        ("malformed JSON", '{"database": ', 2, "not a JSON object"),
        ("unknown provider type",
         {"database": database,
          "providers": [{"name": "x", "type": "sparkpost"}]},
         2, 'unknown type "sparkpost"'),
        ("misspelled provider key",
         {"database": database,
          "providers": [dict(sendgrid(), baseurl="http://127.0.0.1:9")]},
         2, 'unknown key "baseurl"'),
        ("missing API key",
         {"database": database, "providers": [sendgrid(api_key=None)]},
         2, "api_key"),
        ("API key variable unset",
         {"database": database,
          "providers": [dict(sendgrid(), api_key_env="SENDGRID_KEY_FOR_TEST",
                             api_key=None)]},
         2, "SENDGRID_KEY_FOR_TEST"),
        ("unreadable database path",
         {"database": "/nonexistent/folder/outbox.db",
          "providers": [sendgrid()]},
         1, "cannot open database"),
        ("newer schema",
         {"database": newer, "providers": [sendgrid()]},
         1, "schema version 99 is newer"),
    ]
    for name, config, code, text in cases:
        if isinstance(config, dict):
            for provider in config.get("providers", []):
                for key in [k for k, v in provider.items() if v is None]:
                    del provider[key]
        if name == "missing file":
            path = os.path.join(directory, "outboxd.json")
            if os.path.exists(path):
                os.remove(path)
        result = run(directory, config)
        check_equal(result.returncode, code, f"{name}: exit code")
        lines = [line for line in result.stderr.splitlines()
                 if " error " in line or line.startswith("outboxd: ")]
        check_equal(len(lines), 1, f"{name}: error lines in {result.stderr!r}")
        check(text in result.stderr, f"{name}: {text!r} in {result.stderr!r}")
        check("started" not in result.stderr, f"{name}: never started")
        check("SG.secret-1" not in result.stderr, f"{name}: no secret logged")


test_refusals()
finish()
