"""Where a publish's files go, behind one interface: the Hub, a local mirror, or a dry run.

A target says what the repository holds now (``previous``: its manifest and file names) and
applies a staged :class:`~vid_assets.hub.plan.CommitPlan` (``apply``). The Hub gets everything in
one ``create_commit``, so the card can never describe data the repo does not hold; a mirror
replaces each file atomically; a dry run writes the files the commit would add, and
``commit_plan.json``, to a folder and uploads nothing. Tokens never appear in messages.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vid_assets.hub.layout import MANIFEST
from vid_assets.hub.plan import CommitPlan, PublishError, redact


@dataclass
class PublishResult:
    plan: CommitPlan
    target: str
    committed: bool
    commit_url: str | None = None
    dry_run_dir: str | None = None


class Target(Protocol):
    where: str  # for messages: a folder or hf://datasets/<repo>[@revision]

    def previous(self) -> tuple[dict | None, set[str] | None]:
        """The published manifest (None: nothing published yet) and the files the repo holds."""

    def apply(self, plan: CommitPlan, echo: Callable[[str], None]) -> PublishResult:
        """Make the repository hold what ``plan`` says."""


class MirrorTarget:
    """A local folder laid out as the repository (what ``hf://`` readers see, without the Hub)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.where = str(self.folder)

    def previous(self) -> tuple[dict | None, set[str] | None]:
        manifest = self.folder / MANIFEST
        previous = json.loads(manifest.read_text()) if manifest.exists() else None
        if not self.folder.exists():
            return previous, set()
        return previous, {str(p.relative_to(self.folder)) for p in self.folder.rglob("*") if p.is_file()}

    def apply(self, plan: CommitPlan, echo: Callable[[str], None]) -> PublishResult:
        for p, f in plan.add.items():
            (self.folder / p).parent.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / (p + ".tmp")
            shutil.copyfile(f, tmp)
            os.replace(tmp, self.folder / p)
        for p in plan.delete:
            (self.folder / p).unlink(missing_ok=True)
        return PublishResult(plan=plan, target=self.where, committed=True)


class HubTarget:
    """A dataset repository on the Hugging Face Hub (retries with backoff on transient errors)."""

    def __init__(
        self, repo_id: str, *, token: str | None, private: bool, revision: str | None, read_only: bool = False
    ) -> None:
        from huggingface_hub import HfApi

        if not token and not read_only:
            raise PublishError("no Hugging Face token: set HF_TOKEN (write access) or pass token=...")
        self.api, self.repo_id, self.token = HfApi(token=token), repo_id, token
        self.private, self.revision = private, revision
        self.where = f"hf://datasets/{repo_id}" + (f"@{revision}" if revision else "")

    def previous(self) -> tuple[dict | None, set[str] | None]:
        return _hub_call(
            lambda: _remote_state(self.api, self.repo_id, self.revision), f"reading {self.repo_id}", self.token
        )

    def apply(self, plan: CommitPlan, echo: Callable[[str], None]) -> PublishResult:
        api, repo = self.api, self.repo_id
        _hub_call(
            lambda: api.create_repo(repo, repo_type="dataset", private=self.private, exist_ok=True),
            f"creating {repo}",
            self.token,
        )
        info = _hub_call(
            lambda: api.create_commit(
                repo,
                plan.operations(),
                commit_message=plan.message,
                commit_description=plan.description,
                repo_type="dataset",
                revision=self.revision,
            ),
            f"committing to {repo}",
            self.token,
        )
        return PublishResult(plan=plan, target=self.where, committed=True, commit_url=getattr(info, "commit_url", None))


class DryRunTarget:
    """Plans against another target's state, then writes the commit's files to ``out_dir`` only."""

    def __init__(self, reading: Target, out_dir: str | os.PathLike[str] | None) -> None:
        self.reading, self.where = reading, reading.where
        self.out = Path(out_dir or (Path(tempfile.gettempdir()) / "vid_assets_dry_run"))

    def previous(self) -> tuple[dict | None, set[str] | None]:
        return self.reading.previous()

    def apply(self, plan: CommitPlan, echo: Callable[[str], None]) -> PublishResult:
        if self.out.exists():
            shutil.rmtree(self.out)
        for p, f in plan.add.items():
            (self.out / p).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, self.out / p)
        (self.out / "commit_plan.json").write_text(json.dumps(plan.to_dict(), indent=1))
        echo(f"dry run: {len(plan.add)} files written to {self.out} (nothing uploaded)")
        return PublishResult(plan=plan, target=self.where, committed=False, dry_run_dir=str(self.out))


def _remote_state(api, repo_id: str, revision: str | None) -> tuple[dict | None, set[str]]:
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        files = set(api.list_repo_files(repo_id, repo_type="dataset", revision=revision))
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return None, set()
    if MANIFEST not in files:
        return None, files
    try:
        path = api.hf_hub_download(repo_id, MANIFEST, repo_type="dataset", revision=revision)
    except EntryNotFoundError:
        return None, files
    return json.loads(Path(path).read_text()), files


def _hub_call(fn: Callable, what: str, token: str | None, attempts: int = 4):
    """Call the Hub with retries and backoff for transient errors; clear, token-free messages."""
    import tenacity
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    def transient(e: BaseException) -> bool:
        if isinstance(e, HfHubHTTPError):
            status = getattr(e.response, "status_code", None)
            return status == 429 or (status is not None and status >= 500)
        return isinstance(e, ConnectionError | TimeoutError) or type(e).__name__ in ("ConnectError", "ReadTimeout")

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=1, max=30),
        retry=tenacity.retry_if_exception(transient),
        reraise=True,
    )
    try:
        return retrying(fn)
    except OfflineModeIsEnabled as e:
        raise PublishError(f"{what}: HF_HUB_OFFLINE is set, no network; use dry_run or target_dir") from (
            None if e else None
        )
    except HfHubHTTPError as e:
        status = getattr(e.response, "status_code", None)
        if status in (401, 403):
            raise PublishError(
                f"{what}: authentication failed (HTTP {status}): the token needs write access to this dataset repo"
            ) from None
        if status == 429:
            raise PublishError(f"{what}: rate limited by the Hub (HTTP 429) after {attempts} attempts") from None
        raise PublishError(redact(f"{what}: Hub error (HTTP {status}): {e}", token)) from None
    except Exception as e:  # network down and friends
        raise PublishError(redact(f"{what}: cannot reach the Hub ({type(e).__name__}: {e})", token)) from None
