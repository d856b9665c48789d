"""Drive one run in its own process: ``python drive.py STATE_URL HOME FILE PIPELINE EXECUTOR DATE KEY=VALUE...``."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from headrace.config import Settings
from headrace.engine import RunInterrupted, Runner, load_pipelines
from headrace.state import open_store

if __name__ == "__main__":
    url, home, file, name, executor, day, *pairs = sys.argv[1:]
    # Pool sizes from HEADRACE_POOL_<NAME> (tests set them in the environment).
    settings = Settings(home=Path(home), state_url=url, pools=Settings.from_env(cwd=home).pools)
    params = dict(p.split("=", 1) for p in pairs)
    runner = Runner(open_store(url), executor=executor, settings=settings, heartbeat_interval=0.5)
    try:
        result = runner.run(
            load_pipelines(file)[name], logical_date=datetime.fromisoformat(day), params=params
        )
    except RunInterrupted as exc:
        print(exc, flush=True)
        sys.exit(130)
    print(result.state, flush=True)
