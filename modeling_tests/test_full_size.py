"""Full-size checks (slow): a random checkpoint with the released shapes converts, loads and tags."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_full_size_random_checkpoint_converts_loads_and_tags(tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_conversion.py"
    output = tmp_path / "conversion.json"
    subprocess.run(
        [sys.executable, str(script), "--workdir", str(tmp_path / "work"), "--output", str(output)],
        check=True,
        timeout=1800,
    )
    results = json.loads(output.read_text())
    assert results["num_tags"] == 4585
    assert 2.5 < results["checkpoint_gib"] and 1.1 < results["converted_gib"] < 1.4
    assert len(results["top5"]) == 5
    assert not (tmp_path / "work").exists()
