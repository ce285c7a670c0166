"""The deployment package of `make lambda-package` (x86_64) works on its own: with nothing but the unpacked
package and the standard library on sys.path (`python -I -S`), the handler imports (with the C module) and
turns AWS's sample event into its three changes on the real broker. `make test` builds the package first; run
alone without it, the test is skipped (and fails with CI=true)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest

from tests.integration.test_lambda_handler import SAMPLE_EVENT, create_sample_table, envelopes, lambda_config
from tests.services import ROOT

PACKAGE = ROOT / "build" / "lambda" / "x86_64"

SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import bridge.aws_lambda as function
from bridge.codec import transcode
event = json.loads(sys.stdin.read())
answer = function.handler(event, None)
import bridge, kafka, fastavro
print(json.dumps({"answer": answer, "modules": [bridge.__file__, kafka.__file__, fastavro.__file__],
                  "speedups": transcode.encode_image is not None,
                  "path": sys.path}))
"""


def test_the_x86_64_package_alone_handles_the_sample_event(dynamodb, moto_endpoint, kafka_bootstrap, tmp_path):
    if not (PACKAGE / "bridge").is_dir():  # `make test` builds it first
        message = f"no Lambda package at {PACKAGE}: run `make lambda-package`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    create_sample_table(dynamodb)
    config, topic = lambda_config(tmp_path, moto_endpoint, kafka_bootstrap, "TestTable")

    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", SCRIPT, str(PACKAGE)],
        input=json.dumps(copy.deepcopy(SAMPLE_EVENT)),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "CDC_BRIDGE_CONFIG": str(config)},
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["answer"] == {"batchItemFailures": []}
    assert all(module.startswith(str(PACKAGE)) for module in report["modules"]), report
    assert not any("site-packages" in entry for entry in report["path"])
    assert report["speedups"]  # the C module of this machine's build is in the x86_64 package
    assert [change["op"] for change in envelopes(kafka_bootstrap, topic)] == ["c", "u", "d"]
