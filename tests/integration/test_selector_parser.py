"""The selector corpus of tests/data/selectors.json, checked with ActiveMQ's own parser
(``org.apache.activemq.selector.SelectorParser`` of the client jar, in a JVM of a child process):
what it says ActiveMQ accepts or refuses is what ActiveMQ does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, child_env

CORPUS = ROOT / "tests" / "data" / "selectors.json"
PROBE = """
import json, sys
import jpype
from bridge.config import DEFAULT_JARS_DIR
from bridge.jvm import classpath, ensure_jvm
ensure_jvm(classpath(DEFAULT_JARS_DIR))
parser = jpype.JClass("org.apache.activemq.selector.SelectorParser")
verdicts = {}
for case in json.load(open(sys.argv[1])):
    try:
        parser.parse(case["selector"])
        verdicts[case["selector"]] = "accepts"
    except jpype.JException:
        verdicts[case["selector"]] = "refuses"
print(json.dumps(verdicts))
"""


def test_the_corpus_says_what_activemqs_parser_does() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE, str(CORPUS)], capture_output=True, text=True, timeout=120,
                            env=child_env(), cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    verdicts = json.loads(result.stdout.strip().splitlines()[-1])
    corpus = json.loads(Path(CORPUS).read_text())
    assert {c["selector"]: c["activemq"] for c in corpus} == verdicts
