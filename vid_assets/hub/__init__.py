"""Publishing the feature dataset to the Hugging Face Hub (or a local mirror / dry run)."""

from vid_assets.hub.publish import CommitPlan, PublishError, build_plan, publish, redact

__all__ = ["CommitPlan", "PublishError", "build_plan", "publish", "redact"]
