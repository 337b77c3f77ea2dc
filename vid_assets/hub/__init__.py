"""Publishing the feature dataset to the Hugging Face Hub (or a local mirror / dry run)."""

from vid_assets.hub.plan import CommitPlan, PublishError, build_plan, redact
from vid_assets.hub.publish import publish
from vid_assets.hub.targets import PublishResult

__all__ = ["CommitPlan", "PublishError", "PublishResult", "build_plan", "publish", "redact"]
