"""A cached pipeline: run it twice, and the second run is served from the database.

    python examples/pipeline.py                    # SQLite file pipeline.db in $SQLRESULTS_HOME
    python examples/pipeline.py --url postgresql+psycopg://user@host/db

``embed`` is cached by its inputs and its own code (for a day); ``tokenize`` is computed once
per text across threads, processes and (on PostgreSQL) machines, under a SERIALIZABLE lock.
The flow maps ``embed`` over the documents on its thread pool; the second run finds every
result in the database, decides each hit before taking a worker, and does none of the work.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta
from pathlib import Path

from sqlresults import flow, task
from sqlresults.cache_policies import INPUTS, TASK_SOURCE

WORK_SECONDS = 0.3  # what one "expensive" step costs, so a cache hit is visible

DOCS = [
    "results are the return values of tasks",
    "a cache key says what a result depends on",
    "the database keeps results, locks and expirations together",
    "a second run is served from the cache",
]


@task(cache_policy=INPUTS.configure(isolation_level="SERIALIZABLE"), retries=2)
def tokenize(doc: str) -> list[str]:
    """Split a document into words (computed once per document, whoever asks)."""
    time.sleep(WORK_SECONDS)
    return doc.lower().split()


@task(cache_policy=INPUTS + TASK_SOURCE, cache_expiration=timedelta(days=1))
def embed(doc: str, model: str = "small") -> list[float]:
    """A toy embedding: word lengths, scaled by the model's size."""
    scale = {"small": 1.0, "large": 2.0}[model]
    words = tokenize(doc)
    time.sleep(WORK_SECONDS)
    return [scale * len(word) for word in words]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", help="database URL (default: SQLite pipeline.db in SQLRESULTS_HOME)"
    )
    args = parser.parse_args()
    home = Path(os.environ.get("SQLRESULTS_HOME", Path.home() / ".sqlresults"))
    url = args.url or f"sqlite:///{home / 'pipeline.db'}"

    @flow(result_storage=url, persist_result=True)
    def pipeline(docs: list[str]) -> list[list[float]]:
        return embed.map(docs).result()

    @flow(result_storage=url)
    def how_each_is_served(docs: list[str], model: str) -> list[str]:
        return [embed(doc, model, return_state=True).name for doc in docs]

    for run in (1, 2):
        started = time.perf_counter()
        vectors = pipeline(DOCS)
        seconds = time.perf_counter() - started
        print(f"run {run}: {len(vectors)} documents embedded in {seconds:.2f} s")
    print(f"each call now: {', '.join(how_each_is_served(DOCS, 'small'))}")
    print(f"another model is another key: {how_each_is_served(DOCS[:1], 'large')[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
