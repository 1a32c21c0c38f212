"""The approval gate of `[prompts.NAME] require_suite = "DATASET"`: a draft version is
approvable only when the gateway's latest run of that dataset on that version (on its
current content hash), at the dataset's current revision, passed at `min_pass_rate`.

A run of another dataset, of an older revision, or of another content never counts."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.store.dataset_runs import RunSummary


def gate_refusal(
    runs: Sequence[RunSummary],
    prompt: str,
    version: str,
    version_hash: str,
    dataset: str,
    revision: int | None,
    min_pass_rate: float,
) -> str | None:
    """Why `version` may not be approved yet, in words; None when it may. `runs` are
    the prompt's, newest first; `revision` is the dataset's current one (None: the
    dataset does not exist)."""
    again = f"Run `gateway prompts test {prompt}@{version} --dataset {dataset}`."
    needs = f"Prompt '{prompt}' requires a passing run of dataset '{dataset}' before approval"
    if revision is None:
        return (
            f"{needs}, and there is no such dataset: push it "
            f"(`gateway datasets push {dataset} FILE`), then run it on {version}."
        )
    mine = [
        r
        for r in runs
        if r.version == version and r.dataset == dataset and r.version_hash == version_hash
    ]
    if not mine:
        return f"{needs}; {version} has no run of it. {again}"
    current = [r for r in mine if r.dataset_revision == revision]
    if not current:
        return (
            f"{needs}; the latest run on {version} ({mine[0].id}) was of revision "
            f"{mine[0].dataset_revision}, and the dataset is at revision {revision} now. {again}"
        )
    latest = current[0]
    if latest.pass_rate < min_pass_rate:
        return (
            f"{needs}; the latest run on {version} ({latest.id}, revision {revision}) failed "
            f"with pass rate {latest.pass_rate:.2f} ({latest.passed}/{latest.total} cases), "
            f"below the {min_pass_rate:.2f} required."
        )
    return None
